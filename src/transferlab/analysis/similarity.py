"""Cosine similarity search and its quality, as pure functions on arrays.

Everything a similarity index needs that holds no state lives here, so an exact search, a benchmark and a test all
score neighbours the same way: :func:`normalise` (unit rows, so a dot product is the cosine), :func:`top_k_cosine`
(exact nearest neighbours, in chunks so memory stays bounded), :func:`recall_at_k` (how much of an exact result an
approximate one found) and :func:`precision_at_k` (how many neighbours share the query's label: the retrieval
quality of a backbone's features).

When the indexed items carry labels, :func:`fit_discriminant` learns from them which directions of the feature space
tell the classes apart (linear discriminant analysis with Ledoit-Wolf shrinkage, closed form, no parameter to tune)
and :func:`label_aware` searches in both spaces at once: the cosine of two items becomes the mean of their cosine in
the features and their cosine in the discriminant directions. Neighbours of the same class rise; within a class,
the features still order them.
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 16_384  # index rows per matrix product: 16k x 1280 float32 = 80 MB of scores and vectors at most


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so that a dot product is the cosine similarity. An all-zero row stays
    zero (its cosine with anything is taken as 0) rather than becoming NaN."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected a (n, dim) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def top_k_cosine(queries: np.ndarray, vectors: np.ndarray, k: int, normalised: bool = False,
                 exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine nearest neighbours: (indices, scores), each (n_queries, min(k, n)), best first.

    ``vectors`` may be a memory-mapped array: it is read in chunks of :data:`CHUNK_ROWS` rows and only the best
    ``k`` of each chunk are kept, so an index of any size is searched in bounded memory. ``normalised=True`` skips
    re-normalising rows already of unit length. ``exclude_self`` drops index ``i`` from query ``i``'s neighbours
    (queries that are the indexed items themselves: leave-one-out). Ties go to the lower index, so results are
    reproducible."""
    q = np.asarray(queries, np.float32) if normalised else normalise(queries)
    if q.ndim == 1:
        q = q[None, :]
    n = int(vectors.shape[0])
    if n and q.shape[1] != vectors.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, the index {vectors.shape[1]}")
    k = min(int(k), n - 1 if exclude_self else n)
    if k <= 0 or q.shape[0] == 0:
        return np.zeros((q.shape[0], 0), np.int64), np.zeros((q.shape[0], 0), np.float32)
    best_idx = np.zeros((q.shape[0], 0), np.int64)
    best_val = np.zeros((q.shape[0], 0), np.float32)
    for start in range(0, n, CHUNK_ROWS):
        block = np.asarray(vectors[start : start + CHUNK_ROWS], np.float32)
        if not normalised:
            block = normalise(block)
        scores = q @ block.T
        if exclude_self:
            rows = np.arange(q.shape[0])
            inside = (rows >= start) & (rows < start + block.shape[0])
            scores[rows[inside], rows[inside] - start] = -np.inf
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < scores.shape[1] else \
            np.broadcast_to(np.arange(scores.shape[1]), (q.shape[0], scores.shape[1]))
        cand_idx = np.concatenate([best_idx, part + start], axis=1)
        cand_val = np.concatenate([best_val, np.take_along_axis(scores, part, axis=1)], axis=1)
        # sort by score descending, then index ascending (stable ties): lexsort's last key is the primary one
        order = np.lexsort((cand_idx, -cand_val), axis=1)[:, :k]
        best_idx = np.take_along_axis(cand_idx, order, axis=1)
        best_val = np.take_along_axis(cand_val, order, axis=1)
    return best_idx.astype(np.int64), best_val.astype(np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Mean share of the true ``k`` nearest neighbours (``truth``, rows of indices, best first) that ``found`` has
    among its first ``k``: how close an approximate search comes to the exact one (1.0 = identical sets). Rows are
    compared as sets, so equal scores in a different order do not count as misses."""
    found = np.asarray(found)
    truth = np.asarray(truth)
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found has {found.shape[0]} rows, truth {truth.shape[0]}")
    k = int(truth.shape[1] if k is None else k)
    if found.shape[0] == 0 or k == 0:
        return float("nan")
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) / min(k, len(t[:k]) or 1)
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def precision_at_k(neighbours: np.ndarray, query_labels: np.ndarray, index_labels: np.ndarray,
                   k: int | None = None) -> float:
    """Mean share of each query's first ``k`` neighbours (rows of indices into ``index_labels``) whose label equals
    the query's: how well a feature space puts alike things together, with no training. Queries with fewer than
    ``k`` neighbours count over those they have."""
    neighbours = np.asarray(neighbours)
    query_labels = np.asarray(query_labels)
    index_labels = np.asarray(index_labels)
    if neighbours.shape[0] != query_labels.shape[0]:
        raise ValueError(f"{neighbours.shape[0]} rows of neighbours for {query_labels.shape[0]} query labels")
    k = int(neighbours.shape[1] if k is None else k)
    if neighbours.shape[0] == 0 or k == 0 or neighbours.shape[1] == 0:
        return float("nan")
    same = index_labels[neighbours[:, :k]] == query_labels[:, None]
    return float(same.mean())


MIN_PER_CLASS = 2  # items a class needs for its spread to count in a discriminant
MAX_DISCRIMINANT_ITEMS = 20_000  # a seeded sample of this many labelled items is plenty to estimate the directions


def discriminant_classes(labels: list[object]) -> tuple[list[object], str | None]:
    """The labels a discriminant can learn from (classes with at least :data:`MIN_PER_CLASS` items; unlabelled
    items, None, are left out) and, when fewer than two such classes remain, why none can be learned."""
    counts: dict[object, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    usable = sorted((c for c, n in counts.items() if n >= MIN_PER_CLASS), key=str)
    if not counts:
        return usable, "the items have no labels"
    if len(usable) < 2:
        return usable, (f"it needs two classes with at least {MIN_PER_CLASS} items each "
                        f"({len(counts)} class(es), {len(usable)} with enough items)")
    return usable, None


def fit_discriminant(vectors: np.ndarray, labels: list[object]) -> np.ndarray:
    """(dim, classes - 1) float32 projection onto the directions that best separate the labelled classes: linear
    discriminant analysis (scikit-learn's eigen solver, Ledoit-Wolf shrinkage of the within-class covariance), fitted
    on the items of classes with at least :data:`MIN_PER_CLASS` items (a seeded sample of
    :data:`MAX_DISCRIMINANT_ITEMS` of them on a large index). In that space the within-class spread is the
    same in every direction, so a cosine there measures class likeness. ``ValueError`` when fewer than two classes
    can be used (see :func:`discriminant_classes`)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rows = [i for i, label in enumerate(labels) if label is not None]
    if len(rows) > MAX_DISCRIMINANT_ITEMS:  # bounded memory and time on a large index (float64 copy of the rows)
        rows = sorted(np.random.default_rng(0).choice(rows, MAX_DISCRIMINANT_ITEMS, replace=False).tolist())
    usable, why = discriminant_classes([labels[i] for i in rows])
    if why:
        raise ValueError(f"no discriminant can be learned: {why}")
    keep = set(usable)
    rows = [i for i in rows if labels[i] in keep]
    x = np.asarray(vectors, np.float64)[rows]
    y = [str(labels[i]) for i in rows]
    try:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, y)
    except np.linalg.LinAlgError as exc:  # e.g. a few items whose features barely vary within the classes
        raise ValueError(f"no discriminant can be learned: the classes' spread is degenerate ({exc})") from None
    return np.ascontiguousarray(lda.scalings_[:, : len(usable) - 1], dtype=np.float32)


def label_aware(vectors: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Unit feature vectors -> unit vectors of the label-aware space: ``[v, unit(v @ projection)] / sqrt(2)``, so
    the cosine of two items is the mean of their feature cosine and their discriminant cosine."""
    v = normalise(vectors)
    joined = np.concatenate([v, normalise(v @ np.asarray(projection, np.float32))], axis=1)
    return (joined / np.float32(np.sqrt(2.0))).astype(np.float32, copy=False)


__all__ = ["discriminant_classes", "fit_discriminant", "label_aware", "normalise", "precision_at_k", "recall_at_k",
           "top_k_cosine"]
