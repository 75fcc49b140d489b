"""A growing set of unit vectors searched by cosine similarity: exact below ``ann_from`` items, an HNSW graph beyond.

Exact search (:func:`~transferlab.analysis.similarity.top_k_cosine` over memory-mapped shards) is the reference:
below ~100k items it answers a query in tens of milliseconds and is never wrong. Beyond, an HNSW graph (faiss's
``IndexHNSWFlat``, L2 on unit vectors = cosine order) walks a PCA projection of the vectors to 256 dimensions
(faiss's ``PCAMatrix`` pre-transform, fitted on up to 20k of the items; no projection at 256-d or less) and the
``efSearch`` candidates it finds are re-ranked on the exact float32 vectors, so scores are exact cosines. Walking
1280-d vectors (8-bit codes, first tried) cost 20 ms a query on two cores; 256-d floats cost a fifth per step, and
the graph file is a fifth of the vectors' size.

Why faiss (faiss-cpu 1.15.1): the reference ANN library, a CPython-3.11-compatible wheel (abi3) that needs nothing
beyond numpy and packaging (hnswlib 0.8.0 ships only a source archive that needs a compiler; usearch 2.26.6 adds a
second SIMD package), and its HNSW grows by ``add`` without a rebuild and saves to its own file format.

Parameters, by the libraries' guidance rather than by tuning on test queries:

- ``M = 32`` links per node: hnswlib's ALGO_PARAMS puts 12-48 for most uses and the upper end for high-dimensional
  data and high recall; CNN and sentence features are 384-1280-d. faiss's own benchmarks use HNSW32.
- ``efConstruction = 200``: hnswlib's documented default, "enough for recall close to 1 at construction".
- ``efSearch`` is *calibrated on the data being indexed*: when the graph is built, a sample of the items (``256``)
  is held out, the graph is built on the rest, and the smallest ef in 16, 32, ..., 1024 whose recall@10 for those
  held-out items against exact search reaches ``target_recall`` (0.97) is kept; then the held-out items are added.
  So the queries that set ef are real out-of-sample queries from the user's own data, never the test queries. When
  later ``add`` calls have doubled the index, ef is calibrated again the same way with a sample of the new items
  (searched before they are inserted).

The graph is only built at ``ann_from`` items (``ann="auto"``), so small indexes never depend on faiss.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.analysis.similarity import normalise, recall_at_k, top_k_cosine
from transferlab.progress import progress_bar

ANN_FROM = 100_000
HNSW_M = 32
EF_CONSTRUCTION = 200
EF_CHOICES = (16, 32, 64, 128, 256, 512, 1024)
TARGET_RECALL = 0.97
CALIBRATION_QUERIES = 256
CALIBRATION_K = 10
ANN_FILE = "ann.faiss"
VECTORS_DIR = "vectors"
MODES = ("auto", "always", "never")
ADD_CHUNK = 10_000
GRAPH_DIM = 256
PCA_SAMPLE = 20_000


def _faiss(queries: int | None = None) -> Any:
    """faiss, with its OpenMP threads set: every core for building, one for a handful of queries (an OpenMP region
    for one query only costs: its idle threads spin and, on a busy machine, take the core the query needs)."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        from transferlab.errors import UserError

        raise UserError("an approximate index needs faiss-cpu (pip install faiss-cpu==1.15.1)") from exc
    from transferlab._torch import torch_thread_count

    faiss.omp_set_num_threads(1 if queries is not None and queries < 8 else torch_thread_count())
    return faiss


def merge_top_k(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of several (indices, scores) results for the same queries; ties go to the lower index."""
    idx = np.concatenate([p[0] for p in parts], axis=1)
    val = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((idx, -val), axis=1)[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)


class VectorIndex:
    """Unit vectors in append-only shards (``vectors/000000.npy``, ...), with an HNSW graph once large.

    ``ann``: ``"auto"`` builds the graph when the index reaches ``ann_from`` items, ``"always"`` at once,
    ``"never"`` keeps exact search at any size. Indices returned by :meth:`search` are positions in the order the
    vectors were added."""

    def __init__(self, dim: int, ann: str = "auto", ann_from: int = ANN_FROM, m: int = HNSW_M,
                 ef_construction: int = EF_CONSTRUCTION, target_recall: float = TARGET_RECALL, seed: int = 0,
                 progress: bool = False) -> None:
        if ann not in MODES:
            raise ValueError(f"ann must be one of {', '.join(MODES)}, got {ann!r}")
        self.dim = int(dim)
        self.ann = ann
        self.ann_from = int(ann_from)
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        self.target_recall = float(target_recall)
        self.seed = int(seed)
        self.progress = progress
        self.ef_search: int | None = None
        self.calibration: dict[str, Any] | None = None
        self._shards: list[np.ndarray] = []
        self._saved_shards = 0  # shards already on disk (loaded ones are memory-mapped)
        self._graph: Any = None
        self._graph_dirty = False

    # --- size and contents ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(int(s.shape[0]) for s in self._shards)

    @property
    def uses_ann(self) -> bool:
        return self._graph is not None

    def vectors(self, indices: np.ndarray) -> np.ndarray:
        """The stored unit vectors at the given positions (any order, repeats allowed)."""
        flat = np.asarray(indices, np.int64).ravel()
        out = np.zeros((flat.size, self.dim), np.float32)
        start = 0
        for shard in self._shards:
            inside = (flat >= start) & (flat < start + shard.shape[0])
            if inside.any():
                out[inside] = shard[flat[inside] - start]
            start += shard.shape[0]
        return out.reshape((*np.shape(indices), self.dim))

    def _want_graph(self, n: int) -> bool:
        return self.ann == "always" or (self.ann == "auto" and n >= self.ann_from)

    # --- adding ---------------------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (normalised here). With a graph, they are inserted into it (no rebuild); the first time
        the index reaches the size for a graph, the graph is built over everything."""
        x = normalise(vectors)
        if x.shape[0] == 0:
            return
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors have {x.shape[1]} dimensions, the index {self.dim}")
        before = len(self)
        if self._graph is not None:
            if self.calibration and before + x.shape[0] >= 2 * self.calibration["items"] and x.shape[0] >= 100:
                self._calibrate(x[self._sample(x.shape[0], CALIBRATION_QUERIES)])
            self._graph.add_with_ids(x, np.arange(before, before + x.shape[0], dtype=np.int64))
            self._graph_dirty = True
            self._shards.append(x)
        elif self._want_graph(before + x.shape[0]):
            self._shards.append(x)
            self._build_graph()
        else:
            self._shards.append(x)

    def _sample(self, n: int, size: int | None = None) -> np.ndarray:
        """Positions of calibration queries: ``size``, or up to :data:`CALIBRATION_QUERIES` and a tenth of ``n``."""
        rng = np.random.default_rng(self.seed)
        size = min(CALIBRATION_QUERIES, max(n // 10, 1)) if size is None else min(size, n)
        return np.sort(rng.choice(n, size=size, replace=False))

    def _build_graph(self) -> None:
        """Build the graph over every stored vector, holding out a sample to calibrate efSearch on (inserted last;
        the graph stores each vector's position as its id, so insertion order does not matter)."""
        faiss = _faiss()
        n = len(self)
        everything = self._shards[0] if len(self._shards) == 1 else self.vectors(np.arange(n))
        graph_dim = min(self.dim, GRAPH_DIM)
        inner = faiss.IndexHNSWFlat(graph_dim, self.m, faiss.METRIC_L2)
        inner.hnsw.efConstruction = self.ef_construction
        if graph_dim < self.dim:  # the graph walks a PCA projection; candidates are re-ranked on the full vectors
            rng = np.random.default_rng(self.seed)
            train = everything[np.sort(rng.choice(n, size=min(n, PCA_SAMPLE), replace=False))]
            inner = faiss.IndexPreTransform(faiss.PCAMatrix(self.dim, graph_dim), inner)
            inner.train(np.ascontiguousarray(train, np.float32))
        self._graph = faiss.IndexIDMap2(inner)
        self._graph_dirty = True
        held = self._sample(n) if n >= 4 * CALIBRATION_K else np.zeros(0, np.int64)
        keep = np.ones(n, bool)
        keep[held] = False
        members = np.flatnonzero(keep)
        bar = progress_bar(total=n, desc="building the HNSW graph", unit="vec", enabled=self.progress)
        for s in range(0, len(members), ADD_CHUNK):  # chunks: bounded extra memory, and a progress bar
            chunk = members[s : s + ADD_CHUNK]
            self._graph.add_with_ids(np.ascontiguousarray(everything[chunk], np.float32), chunk)
            bar.update(len(chunk))
        if held.size:
            self._calibrate(np.asarray(everything[held]), held)
            self._graph.add_with_ids(np.ascontiguousarray(everything[held]), held.astype(np.int64))
            bar.update(len(held))
        else:
            self.ef_search = EF_CHOICES[0]
        bar.close()

    def _calibrate(self, queries: np.ndarray, absent: np.ndarray | None = None) -> None:
        """Smallest efSearch whose recall@10 for ``queries`` (items not yet in the graph) against exact search
        over what the graph holds (every stored vector but the positions ``absent``) reaches the target."""
        k = min(CALIBRATION_K, int(self._graph.ntotal))
        if absent is None or absent.size == 0:
            truth, _ = self._exact(queries, k)
        else:  # exact search over everything, then the absent positions struck out
            extra = min(int(absent.size), 64)
            idx, _ = self._exact(queries, k + extra)
            keep = ~np.isin(idx, absent)
            if np.all(keep.sum(axis=1) >= k):
                truth = np.stack([row[mask][:k] for row, mask in zip(idx, keep, strict=True)])
            else:  # more than ``extra`` held-out items among some query's neighbours: search the members only
                members = np.setdiff1d(np.arange(len(self)), absent)
                found, _ = top_k_cosine(queries, self.vectors(members), k, normalised=True)
                truth = members[found]
        chosen, reached = EF_CHOICES[-1], 0.0
        for ef in EF_CHOICES:
            found, _ = self._ann_search(queries, k, ef)
            reached = recall_at_k(found, truth, k)
            if reached >= self.target_recall:
                chosen = ef
                break
        self.ef_search = chosen
        self.calibration = {"queries": int(queries.shape[0]), "k": k, "recall": round(float(reached), 4),
                            "ef_search": chosen, "items": int(self._graph.ntotal + queries.shape[0])}

    def _ann_search(self, q: np.ndarray, k: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
        """The graph's best ``ef`` candidates (found in the projected space) re-ranked on the exact float32
        vectors: positions and exact cosines, best first."""
        faiss = _faiss(queries=q.shape[0])
        n = int(self._graph.ntotal)
        candidates = min(n, max(k, ef))
        params = faiss.SearchParametersHNSW(efSearch=max(int(ef), candidates))
        _, positions = self._graph.search(np.ascontiguousarray(q, np.float32), candidates, params=params)
        out_idx = np.full((q.shape[0], k), -1, np.int64)
        out_val = np.full((q.shape[0], k), -np.inf, np.float32)
        for row in range(q.shape[0]):
            cand = positions[row][positions[row] >= 0].astype(np.int64)
            scores = self.vectors(cand) @ q[row]
            order = np.lexsort((cand, -scores))[:k]
            out_idx[row, : len(order)] = cand[order]
            out_val[row, : len(order)] = scores[order]
        return out_idx, out_val

    # --- searching ------------------------------------------------------------------------------------------
    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        parts, start = [], 0
        for shard in self._shards:
            idx, val = top_k_cosine(queries, shard, k, normalised=True)
            parts.append((idx + start, val))
            start += shard.shape[0]
        if not parts:
            return np.zeros((queries.shape[0], 0), np.int64), np.zeros((queries.shape[0], 0), np.float32)
        return merge_top_k(parts, k)

    def search(self, queries: np.ndarray, k: int = 10, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(indices, cosine scores), each (n_queries, min(k, len)), best first. With a graph, its candidates are
        re-ranked on the exact float32 vectors (a rare query whose graph walk finds fewer than ``k`` gets -1 and
        -inf in the empty places); ``exact=True`` scans everything."""
        q = normalise(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((q.shape[0], 0), np.int64), np.zeros((q.shape[0], 0), np.float32)
        if self._graph is None or exact:
            return self._exact(q, k)
        return self._ann_search(q, k, max(self.ef_search or EF_CHOICES[-1], k))

    # --- saving ---------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What the manifest records about the vectors and the graph (JSON)."""
        ann = None
        if self._graph is not None:
            import faiss

            kind = "HNSWFlat(L2)" if self.dim <= GRAPH_DIM else f"PCA{GRAPH_DIM},HNSWFlat(L2)"
            ann = {"library": "faiss-cpu", "version": faiss.__version__, "kind": kind,
                   "ids": "IndexIDMap2: positions in the vectors' order",
                   "file": ANN_FILE, "m": self.m, "ef_construction": self.ef_construction,
                   "ef_search": self.ef_search, "calibration": self.calibration, "rerank": "exact float32"}
        return {"dim": self.dim, "count": len(self), "metric": "cosine", "mode": self.ann, "ann_from": self.ann_from,
                "target_recall": self.target_recall, "seed": self.seed,
                "shards": [f"{VECTORS_DIR}/{i:06d}.npy" for i in range(len(self._shards))], "ann": ann}

    def save(self, directory: str | os.PathLike[str]) -> dict[str, Any]:
        """Write new shards and (when changed) the graph into ``directory``; return :meth:`state`. Shards already
        on disk are never rewritten, so adding to a large index writes only what was added."""
        root = Path(directory)
        (root / VECTORS_DIR).mkdir(parents=True, exist_ok=True)
        for i in range(self._saved_shards, len(self._shards)):
            path = root / VECTORS_DIR / f"{i:06d}.npy"
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, np.ascontiguousarray(self._shards[i], np.float32))
            os.replace(tmp, path)
            self._shards[i] = np.load(path, mmap_mode="r")
        self._saved_shards = len(self._shards)
        if self._graph is not None and self._graph_dirty:
            faiss = _faiss()
            tmp = root / f"{ANN_FILE}.tmp{os.getpid()}"
            faiss.write_index(self._graph, str(tmp))
            os.replace(tmp, root / ANN_FILE)
            self._graph_dirty = False
        return self.state()

    @classmethod
    def load(cls, directory: str | os.PathLike[str], state: dict[str, Any]) -> VectorIndex:
        """The index saved by :meth:`save` in ``directory`` (vectors memory-mapped, the graph read into memory)."""
        root = Path(directory)
        index = cls(state["dim"], state.get("mode", "auto"), state.get("ann_from", ANN_FROM),
                    target_recall=state.get("target_recall", TARGET_RECALL), seed=state.get("seed", 0))
        index._shards = [np.load(root / name, mmap_mode="r") for name in state["shards"]]
        index._saved_shards = len(index._shards)
        ann = state.get("ann")
        if ann:
            faiss = _faiss()
            index.m, index.ef_construction = ann["m"], ann["ef_construction"]
            index.ef_search, index.calibration = ann["ef_search"], ann.get("calibration")
            index._graph = faiss.read_index(str(root / ann["file"]))
        return index


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
