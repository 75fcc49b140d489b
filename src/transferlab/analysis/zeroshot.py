"""Zero-shot classification as pure functions on arrays: classes that have no training images are recognised
through a description every class has, a word vector of its name or a row of binary attributes.

- **ConSE** (Norouzi et al., 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings"): a classifier
  of *source* classes (the backbone's 1000-way ImageNet head) gives probabilities; the image's semantic embedding is
  the probability-weighted mean of the word vectors of its ``top_k`` most probable source classes; it goes to the
  new class whose name vector is nearest by cosine. :func:`phrase_vector` turns a (multi-word) name into one vector,
  :func:`conse_embedding` and :func:`conse_probabilities` do the rest.
- **Attributes** (Lampert et al., 2009/2014, direct attribute prediction, DAP): each class is a row of binary
  attributes. One logistic regression per attribute is learned on the features of the *seen* classes' images
  (:func:`fit_attribute_predictors`); an image of an unseen class gets attribute probabilities, and the unseen
  class whose signature explains them best wins (:func:`attribute_class_probabilities`).

Everything here takes and returns NumPy arrays (scikit-learn is imported inside the one function that fits), so a
benchmark can re-run the analyses over many class splits from one set of cached features.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# ConSE's T: the paper's best setting on ImageNet (T = 10 of 1000 source labels)
CONSE_TOP_K = 10
# cosine -> probability: softmax(cos / temperature). It never changes which class wins, only how sure the
# probabilities look: with 0.1, a class whose cosine is 0.1 higher than the other's of two gets e / (1 + e) = 0.73.
CONSE_TEMPERATURE = 0.1
# DAP multiplies per-attribute likelihoods; an attribute predictor that is sure and wrong would veto a class on its
# own, so each likelihood is kept within [eps, 1 - eps] (one confidently wrong attribute costs log(0.01) ~ -4.6).
DAP_EPSILON = 0.01
ATTRIBUTE_METHODS = ("dap", "mean", "cosine")

# small words that carry no meaning of their own in a class name ("black and gold garden spider",
# "jack-o'-lantern"); they are left out when the name has other words
STOP_WORDS = frozenset({"a", "an", "and", "of", "the", "for", "with", "in", "on", "to", "s", "o"})
_PART_RE = re.compile(r"[a-z0-9]+")


def name_words(name: str) -> list[str]:
    """The words of a class name as a person writes it: ``_``, ``.``, ``/`` and spaces separate words (folder names
    such as ``golden_retriever``); hyphens and apostrophes are kept here and split later only if the whole token
    has no vector (GloVe 6B has ``sulphur-crested`` but not every such word)."""
    return [w for w in re.split(r"[\s_./]+", name.strip().lower()) if w]


def phrase_vector(name: str, vectors: np.ndarray, index: Mapping[str, int]) -> tuple[np.ndarray | None, list[str]]:
    """One unit vector for a (multi-word) name: the mean of its words' unit-length vectors, renormalised.

    A word without a vector of its own is split at hyphens and apostrophes and its parts used instead. Returns the
    vector (None when no word has one) and the words that have none, so a caller can skip a source class whose name
    is partly unknown or refuse a user's class name that is."""
    rows: list[int] = []
    stop_rows: list[int] = []
    missing: list[str] = []
    for word in name_words(name):
        if word in index:
            (stop_rows if word in STOP_WORDS else rows).append(index[word])
            continue
        parts = [p for p in _PART_RE.findall(word) if p in index]
        if not parts:
            missing.append(word)
            continue
        for p in parts:
            (stop_rows if p in STOP_WORDS else rows).append(index[p])
    rows = rows or stop_rows
    if not rows:
        return None, missing
    words = np.asarray(vectors[sorted(rows)], dtype=np.float64)
    words /= np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
    v = words.mean(axis=0)
    norm = float(np.linalg.norm(v))
    if norm < 1e-12:
        return None, missing
    return (v / norm).astype(np.float32), missing


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature``; rows of -inf stay well defined (uniform)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = np.where(np.isfinite(z), z, -1e30)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, d) x (m, d) -> (n, m) cosines; a zero row has cosine 0 with everything."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return an @ bn.T


def conse_embedding(probabilities: np.ndarray, label_vectors: np.ndarray, top_k: int = CONSE_TOP_K) -> np.ndarray:
    """ConSE: (n, K) probabilities over the source classes and (K, d) their vectors -> (n, d) embeddings, each the
    mean of the ``top_k`` most probable source classes' vectors weighted by their probabilities (renormalised over
    those k). A source class whose vector is all zeros (its name had no word vector) is never among the k."""
    p = np.asarray(probabilities, dtype=np.float64)
    vecs = np.asarray(label_vectors, dtype=np.float64)
    if p.ndim != 2 or vecs.ndim != 2 or p.shape[1] != vecs.shape[0]:
        raise ValueError(f"probabilities {p.shape} and label vectors {vecs.shape} do not match")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    usable = np.linalg.norm(vecs, axis=1) > 0
    if not usable.any():
        raise ValueError("no source class has a vector")
    k = min(top_k, int(usable.sum()))
    masked = np.where(usable[None, :], p, -np.inf)
    top = np.argpartition(-masked, kth=k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(p, top, axis=1)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1.0 / k)
    return np.einsum("nk,nkd->nd", weights, vecs[top])


def conse_probabilities(probabilities: np.ndarray, label_vectors: np.ndarray, class_vectors: np.ndarray,
                        top_k: int = CONSE_TOP_K, temperature: float = CONSE_TEMPERATURE) -> np.ndarray:
    """(n, K) source-class probabilities -> (n, C) probabilities of the new classes (rows of ``class_vectors``):
    softmax over the cosines between each image's ConSE embedding and the class vectors."""
    embedding = conse_embedding(probabilities, label_vectors, top_k)
    return softmax(cosine_similarities(embedding, class_vectors), temperature)


@dataclass
class AttributePredictors:
    """One linear model per attribute, as arrays: P(attribute m | x) = sigmoid(x . coef[m] + intercept[m]).

    ``learnable[m]`` is False for an attribute that does not vary over the seen classes' images: nothing can be
    learned about it from them, so its probability is 0.5 and the scoring leaves it out."""

    coef: np.ndarray  # (M, d)
    intercept: np.ndarray  # (M,)
    learnable: np.ndarray  # (M,) bool

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(n, d) features -> (n, M) attribute probabilities."""
        z = np.asarray(features, dtype=np.float64) @ self.coef.T + self.intercept[None, :]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        p[:, ~self.learnable] = 0.5
        return p


def fit_attribute_predictors(features: np.ndarray, attributes: np.ndarray, C: float = 1.0,  # noqa: N803
                             seed: int = 0) -> AttributePredictors:
    """Logistic regression per attribute on (n, d) features and (n, M) binary attribute targets (each image takes
    its class's row). ``class_weight="balanced"``: most attributes are rare among a handful of seen classes, and
    balancing makes each predictor's implicit prior 0.5, so DAP needs no separate prior correction. ``C`` is the
    inverse regularisation strength, as in the ``headless`` strategy (1.0 on raw pooled features)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    a = np.asarray(attributes)
    if x.ndim != 2 or a.ndim != 2 or len(x) != len(a):
        raise ValueError(f"features {x.shape} and attributes {a.shape} do not match")
    m = a.shape[1]
    coef = np.zeros((m, x.shape[1]))
    intercept = np.zeros(m)
    learnable = np.zeros(m, dtype=bool)
    for j in range(m):
        target = (a[:, j] > 0.5).astype(np.int64)
        if target.min() == target.max():
            continue
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed).fit(x, target)
        coef[j] = clf.coef_[0]
        intercept[j] = clf.intercept_[0]
        learnable[j] = True
    return AttributePredictors(coef, intercept, learnable)


def attribute_class_probabilities(attribute_probabilities: np.ndarray, signatures: np.ndarray,
                                  method: str = "dap", use: np.ndarray | None = None, epsilon: float = DAP_EPSILON,
                                  temperature: float = CONSE_TEMPERATURE) -> np.ndarray:
    """(n, M) predicted attribute probabilities and (C, M) binary class signatures -> (n, C) class probabilities.

    ``method``:
    - ``dap``: the product over attributes of P(a_m = the class's value | x), each kept within [eps, 1 - eps],
      normalised over the classes (DAP's posterior with uniform attribute priors);
    - ``mean``: the mean of those likelihoods (one wrong attribute costs less), normalised;
    - ``cosine``: cosine between the probabilities and the signatures, both centred at 0.5 (so a 0 in a signature
      counts as much as a 1), through softmax(cos / temperature).
    ``use`` (M,) bool restricts the scoring to some attributes (those that could be learned)."""
    p = np.asarray(attribute_probabilities, dtype=np.float64)
    s = (np.asarray(signatures) > 0.5).astype(np.float64)
    if p.ndim != 2 or s.ndim != 2 or p.shape[1] != s.shape[1]:
        raise ValueError(f"attribute probabilities {p.shape} and signatures {s.shape} do not match")
    if use is not None:
        use = np.asarray(use, dtype=bool)
        if not use.any():
            raise ValueError("no attribute left to score with")
        p, s = p[:, use], s[:, use]
    if method == "dap":
        q = np.clip(p, epsilon, 1 - epsilon)
        log_lik = np.log(q) @ s.T + np.log(1 - q) @ (1 - s).T
        return softmax(log_lik)
    if method == "mean":
        lik = (p @ s.T + (1 - p) @ (1 - s).T) / s.shape[1]
        return lik / np.maximum(lik.sum(axis=1, keepdims=True), 1e-12)
    if method == "cosine":
        return softmax(cosine_similarities(p - 0.5, s - 0.5), temperature)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ATTRIBUTE_METHODS)}")


def near_chance(accuracy: float, n_classes: int) -> bool:
    """Whether an accuracy is too close to guessing to rely on: less than a quarter of the way from chance
    (1 / classes) to perfect (0.625 or less for two classes, 0.5 or less for three)."""
    chance = 1.0 / max(n_classes, 1)
    return accuracy <= chance + 0.25 * (1.0 - chance)
