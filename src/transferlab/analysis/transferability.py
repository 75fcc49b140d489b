"""Transferability scores: how well a frozen backbone's features will serve a labelled task, computed from cached
features alone (no training), in a fraction of a second per backbone.

- :func:`logme` — LogME (You et al., ICML 2021): the log marginal evidence of a Bayesian linear model from the
  features to each one-hot label column, maximised over its two precisions, averaged per example and per class.
- :func:`h_score` — H-score (Bao et al., 2019): ``tr(cov(f)^-1 cov(E[f|y]))`` with shrinkage for small data.
- :func:`knn_loo_accuracy` — leave-one-out k-nearest-neighbour accuracy by cosine similarity.

Each takes ``features: (n, d) array`` and ``labels: (n,) int array`` and returns a float; higher is better.
"""

from __future__ import annotations

import math

import numpy as np


def logme(features: np.ndarray, labels: np.ndarray, max_iter: int = 100) -> float:
    f = np.asarray(features, np.float64)
    y = np.asarray(labels)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = []
    for k in np.unique(y):
        yk = (y == k).astype(np.float64)
        x = u.T @ yk
        x2 = x**2
        res_outside = max(float(yk @ yk - x2.sum()), 0.0)  # part of y outside the span of the features
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
            res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_outside
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t < 1e-3:
                break
        t = alpha / beta
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_outside
        log_det = float(np.log(alpha + beta * sigma).sum()) + (d - len(sigma)) * math.log(alpha)
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * log_det - beta / 2 * res2
                    - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def h_score(features: np.ndarray, labels: np.ndarray, shrinkage: float = 0.1) -> float:
    """tr(cov^-1 cov_between) with a shrunk covariance. The between-class covariance is sum_k (n_k / n) mu_k mu_k^T,
    so the trace is sum_k (n_k / n) mu_k^T cov^-1 mu_k: one solve against the K class means, not against a d x d
    matrix (the same value, several times faster for 1,280-d features)."""
    f = np.asarray(features, np.float64)
    f = f - f.mean(axis=0)
    y = np.asarray(labels)
    cov = f.T @ f / len(f)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    classes = np.unique(y)
    means = np.stack([f[y == k].mean(axis=0) for k in classes], axis=1)  # (d, K)
    weights = np.array([np.mean(y == k) for k in classes])
    return float(np.sum(weights * np.einsum("dk,dk->k", means, np.linalg.solve(cov, means))))


def knn_loo_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    f = np.asarray(features, np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    y = np.asarray(labels)
    sims = f @ f.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(f) - 1)
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    n_classes = int(y.max()) + 1
    correct = 0
    for i in range(len(f)):
        votes = np.bincount(y[nearest[i]], weights=sims[i, nearest[i]] + 1.0, minlength=n_classes)
        correct += int(votes.argmax() == y[i])
    return correct / len(f)


SCORES = {"logme": logme, "h_score": h_score, "knn_loo": knn_loo_accuracy}


def imagenet_confidence(logits: np.ndarray) -> float:
    """Mean top-1 softmax probability of the backbone's own ImageNet head: high when the data looks like ImageNet
    photos, low for textures, X-rays and the like. A measure of closeness to the source domain."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return float(p.max(axis=1).mean())
