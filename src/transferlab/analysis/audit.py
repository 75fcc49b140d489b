"""Label audit on arrays: which given labels are probably wrong, which items are near-duplicates and which are
outliers, from a feature matrix and its labels alone.

The recipe is confident learning (Northcutt et al., JAIR 2021) as cleanlab implements it; nothing of cleanlab is
rewritten here, only fed:

1. :func:`out_of_fold_probabilities` — every item's class probabilities from a logistic regression that never saw
   it (stratified k-fold cross-validation on standardised frozen features). Out-of-fold is what confident learning
   needs: a model scoring its own training labels agrees with them, mistakes included.
2. :func:`rank_label_issues` — cleanlab's ``find_label_issues`` (which items are flagged, by pruning the estimated
   noise in each class pair) and ``get_label_quality_scores`` (self-confidence: the out-of-fold probability of the
   given label; low means suspect), the flagged items first.
3. :func:`find_data_issues` — cleanlab's ``Datalab`` on the same features: near-duplicate sets and outliers from a
   k-nearest-neighbour graph.

Why these defaults (none was tuned on deliberately flipped labels): 5 folds is cleanlab's own default for
cross-validated probabilities (each model sees 80% of the data, as many as fit on a small set in seconds); ``C`` is
chosen by 3-fold cross-validated log-loss on the given labels over a fixed grid, because confident learning reads
probabilities, so their calibration (log-loss), not accuracy, is what the regularisation should serve.

Everything takes ``features: (n, d) float array`` and ``labels: (n,) int array`` with values ``0..k-1``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from transferlab.errors import DataError

DEFAULT_FOLDS = 5
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass
class OutOfFold:
    """Out-of-fold class probabilities and how they were made."""

    proba: np.ndarray  # (n, k): row i from the model that did not train on item i
    C: float  # noqa: N815 - scikit-learn's name for the inverse regularisation strength
    folds: int


@dataclass
class LabelIssues:
    """The label ranking: ``order`` lists item indices, flagged items first, each part by rising quality."""

    order: np.ndarray
    quality: np.ndarray  # (n,) cleanlab's label quality score in [0, 1]; low = the given label is suspect
    is_issue: np.ndarray  # (n,) bool: flagged by confident learning
    suggested: np.ndarray  # (n,) int: the most probable class out of fold


@dataclass
class DataIssues:
    """Near-duplicates and outliers from Datalab (all arrays have one entry per item)."""

    is_near_duplicate: np.ndarray
    near_duplicate_score: np.ndarray  # low = closer to its nearest neighbour
    near_duplicate_sets: list[list[int]] = field(default_factory=list)  # the other items of each item's set
    is_outlier: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    outlier_score: np.ndarray = field(default_factory=lambda: np.zeros(0))  # low = more atypical

    def duplicate_groups(self) -> list[list[int]]:
        """Connected groups of near-duplicates (each sorted, groups by their first item)."""
        parent = list(range(len(self.is_near_duplicate)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in np.flatnonzero(self.is_near_duplicate):
            for j in self.near_duplicate_sets[i]:
                parent[root(int(j))] = root(int(i))
        groups: dict[int, list[int]] = {}
        for i in np.flatnonzero(self.is_near_duplicate):
            groups.setdefault(root(int(i)), []).append(int(i))
        return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"features must be (n, d) and labels (n,), got {x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be integers 0..k-1")
    counts = np.bincount(y) if len(y) else np.zeros(0, int)
    if len(counts) < 2 or (counts == 0).any():
        raise DataError("the audit needs labels of at least two classes, each with examples "
                        f"(found {int((counts > 0).sum())} class(es) with examples)")
    return x, y.astype(np.int64), counts


def fold_count(labels: np.ndarray, folds: int = DEFAULT_FOLDS) -> int:
    """The folds stratified cross-validation can make: ``folds``, fewer when the smallest class has fewer items;
    a class of one item cannot be predicted by a model that never saw it, so that is an error."""
    _, _, counts = _check(np.zeros((len(labels), 1)), labels)
    if folds < 2:
        raise DataError(f"--folds must be at least 2, got {folds}")
    smallest = int(counts.min())
    if smallest < 2:
        raise DataError(f"class {int(counts.argmin())} has a single example; every class needs at least two to be "
                        "cross-validated (add examples or remove the class)")
    return min(folds, smallest)


@contextmanager
def _quiet_single_thread() -> Iterator[None]:
    """One BLAS thread for the small logistic regressions: L-BFGS on a few hundred rows makes tiny BLAS calls,
    and OpenBLAS threads spinning for them ran 30x slower than one thread on a busy 2-core machine (4.5 s against
    0.14 s a fit). scikit-learn's announcements of future defaults we do not rely on are silenced."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _logistic(C: float, seed: int):  # noqa: ANN202, N803 - a scikit-learn pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, random_state=seed))


def choose_c(features: np.ndarray, labels: np.ndarray, seed: int = 0, grid: tuple[float, ...] = C_GRID) -> float:
    """The ``C`` of the grid with the best 3-fold cross-validated log-loss on the given labels (standardised
    features): calibrated probabilities are what confident learning consumes."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y, _ = _check(features, labels)
    cv = StratifiedKFold(n_splits=fold_count(y, 3), shuffle=True, random_state=seed)
    scores = []
    with _quiet_single_thread():
        for c in grid:
            scores.append(cross_val_score(_logistic(c, seed), x, y, cv=cv, scoring="neg_log_loss").mean())
    return float(grid[int(np.argmax(scores))])


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, folds: int = DEFAULT_FOLDS,
                              C: float | None = None, seed: int = 0) -> OutOfFold:  # noqa: N803
    """Every item's class probabilities from a logistic regression fitted on the other folds (stratified k-fold,
    shuffled with ``seed``). ``C`` None: chosen by :func:`choose_c`."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x, y, _ = _check(features, labels)
    k = fold_count(y, folds)
    if C is not None and C <= 0:
        raise DataError(f"C must be > 0, got {C}")
    c = choose_c(x, y, seed) if C is None else float(C)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with _quiet_single_thread():
        proba = cross_val_predict(_logistic(c, seed), x, y, cv=cv, method="predict_proba")
    return OutOfFold(proba=np.asarray(proba, np.float64), C=c, folds=k)


def rank_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> LabelIssues:
    """Confident learning on out-of-fold probabilities: cleanlab flags the issues (``prune_by_noise_rate``) and
    scores every label (self-confidence); the ranking puts the flagged items first, each part from the lowest
    score up, so the top of the list is what to review first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y = np.asarray(labels, np.int64)
    p = np.asarray(pred_probs, np.float64)
    if p.ndim != 2 or p.shape[0] != len(y) or (len(y) and p.shape[1] <= int(y.max())):
        raise ValueError(f"pred_probs must be (n, k) for n={len(y)} labels, got {p.shape}")
    is_issue = np.asarray(find_label_issues(y, p, filter_by="prune_by_noise_rate", n_jobs=1), bool)
    quality = np.asarray(get_label_quality_scores(y, p, method="self_confidence"), np.float64)
    order = np.lexsort((np.arange(len(y)), quality, ~is_issue))  # flagged first, then by quality, ties by index
    return LabelIssues(order=order, quality=quality, is_issue=is_issue, suggested=p.argmax(axis=1))


def find_data_issues(features: np.ndarray, labels: np.ndarray, k: int = 10) -> DataIssues:
    """Near-duplicates and outliers by cleanlab's Datalab from a k-nearest-neighbour graph of the features (cosine
    distance for wide features, Datalab's own choice); ``k`` shrinks on tiny sets."""
    from cleanlab import Datalab

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    n = len(x)
    none = DataIssues(np.zeros(n, bool), np.ones(n), [[] for _ in range(n)], np.zeros(n, bool), np.ones(n))
    if n < 3:
        return none
    kk = max(1, min(k, n - 2))
    lab = Datalab({"label": y.tolist()}, label_name="label", verbosity=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab.find_issues(features=x, issue_types={"near_duplicate": {"k": kk}, "outlier": {"k": kk}})
    dup = lab.get_issues("near_duplicate")
    out = lab.get_issues("outlier")
    return DataIssues(
        is_near_duplicate=dup["is_near_duplicate_issue"].to_numpy(bool),
        near_duplicate_score=dup["near_duplicate_score"].to_numpy(np.float64),
        near_duplicate_sets=[[int(j) for j in s] for s in dup["near_duplicate_sets"]],
        is_outlier=out["is_outlier_issue"].to_numpy(bool),
        outlier_score=out["outlier_score"].to_numpy(np.float64),
    )


def precision_at_k(order: np.ndarray, truly_wrong: np.ndarray, k: int | None = None) -> tuple[float, float]:
    """(precision, recall) of the first ``k`` ranked items against known wrong labels (``k`` defaults to how many
    there are, where precision equals recall): how an audit is judged on deliberately flipped labels."""
    wrong = set(int(i) for i in np.asarray(truly_wrong).ravel())
    k = len(wrong) if k is None else k
    if not wrong or k <= 0:
        return float("nan"), float("nan")
    hits = len(wrong & set(int(i) for i in np.asarray(order)[:k]))
    return hits / k, hits / len(wrong)
