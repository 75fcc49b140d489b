"""Classifier heads as plain arrays: what a saved model needs to predict, without torch or scikit-learn.

Every strategy that classifies cached features ends with one of these, so the numbers a user sees after training
are exactly what the saved model gives. Each head saves to a small JSON file plus a safetensors file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Head:
    kind: str = ""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {}

    def save(self, directory: Path) -> None:
        save_file({k: np.ascontiguousarray(v) for k, v in self.tensors().items()}, str(directory / "head.safetensors"))
        (directory / "head.json").write_text(json.dumps({"kind": self.kind, **self.config()}, indent=2))

    @staticmethod
    def load(directory: Path) -> Head:
        cfg = json.loads((directory / "head.json").read_text())
        tensors = load_file(str(directory / "head.safetensors"))
        kind = cfg.pop("kind")
        cls = {"linear": LinearHead, "mlp": MLPHead, "knn": KNNHead}[kind]
        return cls.from_saved(tensors, cfg)


class LinearHead(Head):
    """Softmax over ``x @ W.T + b`` (a binary logistic model is stored as two rows, +-w/2)."""

    kind = "linear"

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = np.asarray(weight, np.float32)
        self.bias = np.asarray(bias, np.float32)

    @classmethod
    def from_sklearn(cls, coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray | None = None,
                     scale: np.ndarray | None = None) -> LinearHead:
        """Fold an optional standardisation ``(x - mean) / scale`` into the weights."""
        coef = np.asarray(coef, np.float64)
        intercept = np.asarray(intercept, np.float64)
        if coef.shape[0] == 1:  # binary: p(class 1) = sigmoid(z) = softmax([-z/2, z/2])[1]
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        if scale is not None:
            coef = coef / np.asarray(scale, np.float64)[None, :]
        if mean is not None:
            intercept = intercept - coef @ np.asarray(mean, np.float64)
        return cls(coef, intercept)

    def decision(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self.weight.T + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.decision(x).astype(np.float64))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    @classmethod
    def from_saved(cls, t: dict[str, np.ndarray], cfg: dict[str, Any]) -> LinearHead:
        return cls(t["weight"], t["bias"])


class MLPHead(Head):
    """Input standardisation, then linear layers with ReLU between them (dropout is a training-time no-op)."""

    kind = "mlp"

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], mean: np.ndarray, scale: np.ndarray) -> None:
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.mean = np.asarray(mean, np.float32)
        self.scale = np.asarray(scale, np.float32)

    def logits(self, x: np.ndarray) -> np.ndarray:
        h = (np.asarray(x, np.float32) - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x).astype(np.float64))

    def tensors(self) -> dict[str, np.ndarray]:
        t = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(self.layers):
            t[f"layers.{i}.weight"] = w
            t[f"layers.{i}.bias"] = b
        return t

    def config(self) -> dict[str, Any]:
        return {"num_layers": len(self.layers)}

    @classmethod
    def from_saved(cls, t: dict[str, np.ndarray], cfg: dict[str, Any]) -> MLPHead:
        layers = [(t[f"layers.{i}.weight"], t[f"layers.{i}.bias"]) for i in range(cfg["num_layers"])]
        return cls(layers, t["mean"], t["scale"])


class KNNHead(Head):
    """k nearest neighbours by cosine similarity; probabilities are similarity-weighted votes."""

    kind = "knn"

    def __init__(self, train_features: np.ndarray, train_labels: np.ndarray, n_classes: int, k: int = 5) -> None:
        x = np.asarray(train_features, np.float32)
        self.train_features = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        self.train_labels = np.asarray(train_labels, np.int64)
        self.n_classes = int(n_classes)
        self.k = int(k)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = x @ self.train_features.T
        k = min(self.k, sims.shape[1])
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        proba = np.zeros((x.shape[0], self.n_classes))
        for row in range(x.shape[0]):
            for j in nearest[row]:
                proba[row, self.train_labels[j]] += max(float(sims[row, j]), 0.0) + 1e-6
        return proba / proba.sum(axis=1, keepdims=True)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"train_features": self.train_features, "train_labels": self.train_labels}

    def config(self) -> dict[str, Any]:
        return {"n_classes": self.n_classes, "k": self.k}

    @classmethod
    def from_saved(cls, t: dict[str, np.ndarray], cfg: dict[str, Any]) -> KNNHead:
        return cls(t["train_features"], t["train_labels"], cfg["n_classes"], cfg["k"])


# --- head-side math on features, shared by the text strategies and the loaders of their saved models ---------------
def sparse_linear_proba(head: LinearHead, x: Any) -> np.ndarray:
    """Softmax of a linear head over (possibly sparse, scipy) features: ``x @ W.T`` keeps a CSR matrix sparse, where
    :meth:`LinearHead.predict_proba` would densify the whole TF-IDF block."""
    logits = np.asarray(x @ head.weight.T, np.float64) + head.bias
    return softmax(logits)


def blend_naive_bayes(proba: np.ndarray, nb_head: LinearHead, tfidf: Any, weight: float) -> np.ndarray:
    """``proba`` averaged with a naive Bayes head's probabilities over the (sparse) TF-IDF block, ``weight`` on the
    latter (text_hybrid, and its saved models)."""
    return (1 - weight) * proba + weight * sparse_linear_proba(nb_head, tfidf)


def stack_features(tfidf: Any, embeddings: np.ndarray, weight: float) -> Any:
    """The sparse TF-IDF block and the weighted dense embedding block, side by side (CSR, float32)."""
    from scipy import sparse

    return sparse.hstack([tfidf, sparse.csr_matrix(np.asarray(embeddings, np.float32) * np.float32(weight))],
                         format="csr", dtype=np.float32)
