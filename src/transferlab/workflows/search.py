"""index and search: nearest neighbours by cosine similarity over the frozen features of any backbone.

``build_index(DATA, out)`` embeds every image (or text) of DATA with one backbone through the feature cache and
saves a directory; ``add_to_index(out, more)`` appends without rebuilding; ``load_index(out).search(query, k)``
embeds the query exactly as the items were embedded (the directory records the backbone, the layer and, for text,
the encoder and its truncation) and returns the neighbours, best first, with their cosine scores.

The saved directory (no pickles):

- ``index.json``: the manifest (format, modality, backbone, layer, dimension, count, the vector store's state, the
  ANN parameters and calibration, and what each ``index``/``--add`` call read and left out);
- ``items/000000.jsonl``, ...: one line per item (``path``, ``label``, and ``text`` for texts), one file per call;
- ``vectors/000000.npy``, ...: the unit vectors, float32, one file per call (memory-mapped when searching);
- ``ann.faiss``: faiss's own file of the HNSW graph, present only for large indexes (see
  :mod:`transferlab.features.vector_index`);
- ``centre.npy`` (``--centre``) and ``discriminant.npy`` (the label-aware metric), when used.

The metric (``--metric``): ``cosine`` of the features, or ``labels``: when the items indexed first carry labels (class
folders, a label column), the directions that tell those classes apart are learned from them
(:func:`transferlab.analysis.similarity.fit_discriminant`) and each cosine becomes the mean of the feature cosine and
the cosine in those directions, so items of the query's class rank first. ``auto`` (the default) takes ``labels``
whenever the labels allow it. On dtd_subset (index = train/, 150 textures of 10 classes; queries = val/), the
precision@5 of same-class neighbours with EfficientNet-Lite0 rose from 0.680 to 0.788 (benchmarks/search.py).

The manifest is written last, so an interrupted ``--add`` leaves the index as it was.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab._version import __version__
from transferlab.analysis.similarity import discriminant_classes, fit_discriminant, label_aware, normalise
from transferlab.backbones import DEFAULT_BACKBONE, DEFAULT_TEXT_ENCODER, get_backbone, list_backbones
from transferlab.data.collection import Collection, collection_task, read_collection
from transferlab.errors import DataError, UserError
from transferlab.features.vector_index import ANN_FROM, MODES, VectorIndex

MANIFEST = "index.json"
ITEMS_DIR = "items"
FORMAT = 1
LAYERS = ("features", "mid", "features+mid")
TEXT_MAX_LENGTH = 256
MAX_SKIPPED_LISTED = 200  # per call, in the manifest; the count is always complete
CENTRE_FILE = "centre.npy"
DISCRIMINANT_FILE = "discriminant.npy"
METRICS = ("auto", "labels", "cosine")
MIN_ITEMS_TO_CENTRE = 20  # the mean of fewer items says too little about the data to centre on


# --- embedding ---------------------------------------------------------------------------------------------------
def resolve_backbone(task: str, backbone: str | os.PathLike[str] | None) -> str:
    """The backbone to embed ``task`` items with: the modality's default when None; a clear error for an unknown
    name or one of the other modality."""
    if backbone is None:
        return DEFAULT_BACKBONE if task == "image" else DEFAULT_TEXT_ENCODER
    spec = get_backbone(backbone)  # UserError for an unknown name
    if spec.modality != task:
        names = ", ".join(b.name for b in list_backbones(task))
        raise UserError(f"--backbone {backbone} is a{'n image' if spec.modality == 'image' else ' text'} backbone, "
                        f"but the data holds {task}s: choose one of {names}")
    return str(Path(spec.path).resolve()) if getattr(spec, "path", None) else spec.name


def embed(backbone: str, task: str, items: Sequence[Any], layer: str = "features",
          desc: str = "embedding") -> tuple[np.ndarray, list[int], dict[int, str]]:
    """(unit vectors of the usable items, their indices in ``items``, index -> why the others were left out).

    Images: ``layer`` is the backbone's pooled final features, its pooled mid-stage features, or both, each made
    unit length before they are joined (so neither dominates the cosine). Text: the encoder's sentence vectors."""
    from transferlab.features import extract_features

    if task == "text":
        got = extract_features(backbone, [str(t) for t in items], desc=desc, max_length=TEXT_MAX_LENGTH)
        return normalise(got.arrays["features"]), got.ok, got.failures
    if layer not in LAYERS:
        raise UserError(f"--layer {layer}: choose one of {', '.join(LAYERS)}")
    outputs = tuple(layer.split("+"))
    got = extract_features(backbone, list(items), outputs=outputs, desc=desc)
    parts = [normalise(got.arrays[o]) for o in outputs]
    vectors = parts[0] if len(parts) == 1 else normalise(np.concatenate(parts, axis=1))
    return vectors, got.ok, got.failures


# --- the index ---------------------------------------------------------------------------------------------------
class Index:
    """A saved similarity index: its manifest, its items and its vectors. Get one from :func:`build_index`,
    :func:`add_to_index` or :func:`load_index`."""

    def __init__(self, directory: str | os.PathLike[str], manifest: dict[str, Any], entries: list[dict[str, Any]],
                 vectors: VectorIndex | None) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        self.entries = entries
        self.vectors = vectors
        self.centre: np.ndarray | None = None  # subtracted before normalising (``centre=True``), fixed at build
        self.projection: np.ndarray | None = None  # the label-aware metric's discriminant directions, fixed at build

    def to_space(self, vectors: np.ndarray) -> np.ndarray:
        """Embedded vectors (as :func:`embed` gives them) -> the index's space: centred on the mean of the first
        items indexed, then unit length, when the index was built with ``centre=True``; then joined with their
        discriminant coordinates when the metric is label-aware; unchanged otherwise."""
        if self.centre is not None:
            vectors = normalise(np.asarray(vectors, np.float32) - self.centre)
        return vectors if self.projection is None else label_aware(vectors, self.projection)

    @property
    def feature_dim(self) -> int:
        """The width of the embedded vectors (the index's own vectors are wider when the metric is label-aware)."""
        return int(self.vectors.dim - (0 if self.projection is None else self.projection.shape[1]))

    @property
    def metric(self) -> str:
        return "labels" if self.projection is not None else "cosine"

    @property
    def modality(self) -> str:
        return str(self.manifest["modality"])

    @property
    def backbone(self) -> str:
        return str(self.manifest["backbone"])

    @property
    def layer(self) -> str:
        return str(self.manifest.get("layer", "features"))

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self) -> str:
        """One line: what the index holds and how it is searched."""
        how = "exact search" if not self.vectors.uses_ann else f"HNSW (efSearch {self.vectors.ef_search})"
        layer = f", {self.layer}" if self.modality == "image" and self.layer != "features" else ""
        centred = ", centred" if self.centre is not None else ""
        metric = "" if self.projection is None else f", label-aware cosine ({self.projection.shape[1] + 1} classes)"
        return (f"{len(self)} {self.modality}s, {self.backbone}{layer}{centred}, {self.feature_dim}-d{metric}, "
                f"{how}")

    # --- queries ----------------------------------------------------------------------------------------------
    def check_query(self, modality: str) -> None:
        """A clear error for a query of the other modality, or for an empty index."""
        if modality != self.modality:
            if self.modality == "image":
                raise UserError(f"{self.directory} is an index of images ({self.backbone}): give an image file as "
                                "the query, not text")
            raise UserError(f"{self.directory} is an index of texts ({self.backbone}): give the query as text "
                            '(--text "..."), not an image')
        if len(self) == 0:
            raise UserError(f"{self.directory}: the index is empty; add items with "
                            f"`transferlab index DATA --out {self.directory} --add`")

    def embed_queries(self, queries: Sequence[Any]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Queries embedded as the items were (same backbone, layer, encoder, centring): vectors in the index's
        space, the indices of the usable queries, the reasons for the others. The cache is only read."""
        with runtime.read_only_cache():
            vectors, ok, failures = embed(self.backbone, self.modality, queries, self.layer, desc="embedding queries")
        if not ok:  # none usable: nothing to move into the index's space (the failures say why)
            return np.zeros((0, self.vectors.dim), np.float32), ok, failures
        return self.to_space(vectors), ok, failures

    def search(self, queries: Any, k: int = 10, exact: bool = False) -> list[list[dict[str, Any]]]:
        """Neighbours of each query, best first: ``{"rank", "index", "path", "score", "label"}`` (and ``"text"``
        for texts). ``queries``: image inputs (paths, file bytes, PIL images, uint8 arrays) for an image index,
        strings for a text index, or a float array of vectors ((n, dim) or (dim,)) as :func:`embed` gives them
        (the index centres them when it was built so). A query that cannot be read is a :class:`DataError`."""
        if len(self) == 0:
            self.check_query(self.modality)
        if isinstance(queries, np.ndarray) and queries.dtype.kind == "f":
            vectors = np.atleast_2d(queries)
            if vectors.shape[1] != self.feature_dim:
                raise UserError(f"query vectors have {vectors.shape[1]} dimensions; this index holds "
                                f"{self.feature_dim}-d vectors of {self.backbone}")
            vectors = self.to_space(normalise(vectors))
        else:
            items = [queries] if isinstance(queries, str | bytes | os.PathLike) or _is_single_image(queries) \
                else list(queries)
            if self.modality == "text" and any(not isinstance(q, str) for q in items):
                self.check_query("image")
            if self.modality == "image" and any(isinstance(q, str) and not Path(q).exists() for q in items):
                missing = next(q for q in items if isinstance(q, str) and not Path(q).exists())
                if not Path(missing).suffix:
                    self.check_query("text")
                raise DataError(f"{missing}: no such image file")
            vectors, ok, failures = self.embed_queries(items)
            if failures:
                i, reason = next(iter(failures.items()))
                raise DataError(f"query {_describe(items[i])}: {reason}")
            del ok
        idx, scores = self.vectors.search(vectors, k, exact=exact)
        return [[self._neighbour(rank, int(i), float(s)) for rank, (i, s) in enumerate(zip(ri, rs, strict=True), 1)
                 if i >= 0] for ri, rs in zip(idx, scores, strict=True)]

    def _neighbour(self, rank: int, i: int, score: float) -> dict[str, Any]:
        entry = self.entries[i]
        out = {"rank": rank, "index": i, "path": entry["path"], "score": round(score, 6), "label": entry.get("label")}
        if "text" in entry:
            out["text"] = entry["text"]
        return out

    def labels(self) -> list[str | None]:
        return [e.get("label") for e in self.entries]

    # --- saving -----------------------------------------------------------------------------------------------
    def _save(self, new_entries: list[dict[str, Any]], source: dict[str, Any]) -> None:
        """Write what this call added (items, vectors, graph) and then the manifest."""
        root = self.directory
        (root / ITEMS_DIR).mkdir(parents=True, exist_ok=True)
        shard = len(self.manifest.get("items", []))
        if new_entries:
            name = f"{ITEMS_DIR}/{shard:06d}.jsonl"
            tmp = root / f"{name}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                for e in new_entries:
                    f.write(json.dumps(e, ensure_ascii=False) + "\n")
            os.replace(tmp, root / name)
            self.manifest.setdefault("items", []).append(name)
        self.manifest["vectors"] = self.vectors.save(root)
        self.manifest["count"] = len(self)
        self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.manifest.setdefault("sources", []).append(source)
        tmp = root / f"{MANIFEST}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(self.manifest, indent=2))
        os.replace(tmp, root / MANIFEST)


def _is_single_image(query: object) -> bool:
    """A PIL image or an image array (a single query), as opposed to a list of queries."""
    from transferlab.data.images import is_in_memory

    return not isinstance(query, list | tuple) and is_in_memory(query)


def _describe(item: object) -> str:
    return str(item) if isinstance(item, str | os.PathLike) else type(item).__name__


def _entries(found: Collection, ok: list[int]) -> list[dict[str, Any]]:
    out = []
    for i in ok:
        e: dict[str, Any] = {"path": found.ids[i], "label": found.labels[i]}
        if found.task == "text":
            e["text"] = found.items[i]
        out.append(e)
    return out


def _add_collection(index: Index, found: Collection, data: str | os.PathLike[str],
                    vector_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Embed the items of ``found`` that the index lacks (by path, or ``file:line`` for texts), add them, save.
    A new index (``index.vectors`` None) gets its vector store here, once the width of the vectors is known."""
    known = {e["path"] for e in index.entries}
    fresh = []
    for i, item_id in enumerate(found.ids):
        if item_id not in known:
            known.add(item_id)
            fresh.append(i)
    t0 = time.perf_counter()
    subset = found.subset(fresh)
    if len(subset):
        vectors, ok, failures = embed(index.backbone, index.modality, subset.items, index.layer,
                                      desc=f"indexing {index.modality}s")
    else:
        vectors, ok, failures = np.zeros((0, 1), np.float32), [], {}
    if not ok and not index.entries:
        reasons = "; ".join(sorted(set(failures.values())))[:300]
        raise DataError(f"{data}: none of the {len(found)} file(s) could be read as images ({reasons})")
    if index.vectors is None:
        options = dict(vector_options or {})
        if options.pop("centre", False) and len(ok) >= MIN_ITEMS_TO_CENTRE:
            index.centre = vectors.mean(axis=0).astype(np.float32)
            np.save(index.directory / CENTRE_FILE, index.centre)
            index.manifest["centre"] = CENTRE_FILE
        _choose_metric(index, index.to_space(vectors), [subset.labels[i] for i in ok], options.pop("metric", "auto"))
        width = vectors.shape[1] + (0 if index.projection is None else index.projection.shape[1])
        index.vectors = VectorIndex(width, **options)
    if len(ok):
        index.vectors.add(index.to_space(vectors))
    new_entries = _entries(subset, ok)
    index.entries.extend(new_entries)
    skipped = [{"path": subset.ids[i], "reason": r} for i, r in failures.items()]
    skipped += found.report.skipped
    source = {"data": str(Path(data).resolve()), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "added": len(new_entries), "already_indexed": len(found) - len(fresh), "skipped_count": len(skipped),
              "skipped": skipped[:MAX_SKIPPED_LISTED], "seconds": round(time.perf_counter() - t0, 3)}
    index._save(new_entries, source)
    return source


def _choose_metric(index: Index, vectors: np.ndarray, labels: list[str | None], metric: str) -> None:
    """Learn the label-aware metric from the first items' vectors and labels when ``metric`` asks for it (or, for
    ``auto``, when the labels allow it); say which metric the index uses and why in the manifest."""
    if metric == "cosine":  # the choices were checked by build_index before anything was read
        index.manifest["metric_reason"] = "--metric cosine: the features' cosine"
        return
    usable, why = discriminant_classes(labels)
    if why:
        if metric == "labels":
            raise UserError(f"--metric labels: {why}; index with --metric cosine, or give DATA labels (class folders, "
                            "a label column)")
        index.manifest["metric_reason"] = f"the features' cosine: no label-aware metric, as {why}"
        return
    try:
        index.projection = fit_discriminant(vectors, list(labels))
    except ValueError as exc:
        if metric == "labels":
            raise UserError(f"--metric labels: {exc}; index with --metric cosine") from None
        index.manifest["metric_reason"] = f"the features' cosine: {exc}"
        return
    np.save(index.directory / DISCRIMINANT_FILE, index.projection)
    keep = set(usable)
    counted = sum(1 for label in labels if label in keep)
    index.manifest["discriminant"] = {"file": DISCRIMINANT_FILE, "classes": [str(c) for c in usable],
                                      "items": counted, "method": "LDA, Ledoit-Wolf shrinkage"}
    index.manifest["metric"] = "cosine+labels"
    index.manifest["metric_reason"] = (f"label-aware: the directions that separate the {len(usable)} classes of the "
                                       f"{counted} labelled items count as much as the features "
                                       "(--metric cosine for the features alone)")


# --- the verbs ---------------------------------------------------------------------------------------------------
def build_index(data: str | os.PathLike[str], out: str | os.PathLike[str], backbone: str | None = None,
                task: str | None = None, layer: str = "features", centre: bool = False, ann: str = "auto",
                ann_from: int = ANN_FROM, text_column: str = "text", label_column: str = "label",
                overwrite: bool = False, metric: str = "auto") -> Index:
    """Index every image (or text) of DATA into the directory ``out`` and return the :class:`Index`.

    ``backbone``: any registered backbone of DATA's modality (default: ``efficientnet_lite0`` for images,
    ``minilm`` for text) or a ``pretrain-text`` folder. ``layer`` (images): ``features``, ``mid`` or
    ``features+mid``. ``centre``: subtract the mean of the items first indexed before normalising (SimpleShot's
    CL2N; with at least 20 items; kept fixed when items are added). ``metric``: ``auto`` (label-aware when DATA's
    labels allow it), ``labels`` (label-aware, or an error saying why not) or ``cosine`` (see the module docstring;
    learned from the items of this call, kept fixed when items are added). ``ann``: ``auto`` (an HNSW graph from
    ``ann_from`` items on), ``always`` or ``never``.
    Files that cannot be read are left out and listed in the manifest."""
    if ann not in MODES:
        raise UserError(f"--ann {ann}: choose one of {', '.join(MODES)}")
    if metric not in METRICS:
        raise UserError(f"--metric {metric}: choose one of {', '.join(METRICS)}")
    root = Path(out)
    if (root / MANIFEST).exists() and not overwrite:
        raise UserError(f"{root} already holds an index: add to it with --add, or choose another --out")
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root}: a file is in the way; an index is a directory")
    found = read_collection(data, task, text_column, label_column)
    chosen = resolve_backbone(found.task, backbone)
    if found.task == "text" and layer != "features":
        raise UserError("--layer is for image backbones; a text encoder gives one sentence vector")
    if layer not in LAYERS:
        raise UserError(f"--layer {layer}: choose one of {', '.join(LAYERS)}")
    if overwrite and root.exists():
        import shutil

        for name in (MANIFEST, ITEMS_DIR, "vectors", "ann.faiss", CENTRE_FILE, DISCRIMINANT_FILE):
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    root.mkdir(parents=True, exist_ok=True)
    spec = get_backbone(chosen)
    manifest: dict[str, Any] = {
        "format": FORMAT, "kind": "transferlab-similarity-index", "modality": found.task, "backbone": chosen,
        "layer": layer if found.task == "image" else "features",
        "encoder": {"name": chosen, "max_length": TEXT_MAX_LENGTH} if found.task == "text" else None,
        "preprocessing": spec.preprocessing.to_dict() if found.task == "image" else None,
        "weights_version": getattr(spec, "weights_version", None), "transferlab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "metric": "cosine", "count": 0, "centre": None,
    }
    index = Index(root, manifest, [], None)
    try:
        _add_collection(index, found, data, {"ann": ann, "ann_from": ann_from, "progress": runtime.show_progress(),
                                             "centre": centre, "metric": metric})
    except BaseException:
        if not (root / MANIFEST).exists():  # leave no half-written index behind
            import shutil

            for name in (ITEMS_DIR, "vectors"):
                shutil.rmtree(root / name, ignore_errors=True)
            (root / CENTRE_FILE).unlink(missing_ok=True)
            (root / DISCRIMINANT_FILE).unlink(missing_ok=True)
        raise
    return index


def load_index(directory: str | os.PathLike[str]) -> Index:
    """The index saved in ``directory``; a clear error when it is not one."""
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise UserError(f"{root}: not a similarity index (no {MANIFEST}); build one with "
                        f"`transferlab index DATA --out {root}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: damaged similarity index ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "transferlab-similarity-index":
        raise UserError(f"{path}: not a transferlab similarity index")
    if int(manifest.get("format", 0)) > FORMAT:
        raise UserError(f"{root}: written by a newer transferlab (index format {manifest['format']})")
    if manifest.get("modality") not in ("image", "text"):
        raise UserError(f"{path}: damaged similarity index (modality {manifest.get('modality')!r})")
    try:  # a missing, truncated or mismatched file of the index: damaged, said as such (not a crash)
        entries: list[dict[str, Any]] = []
        for name in manifest.get("items", []):
            with open(root / name, encoding="utf-8") as f:
                entries.extend(json.loads(line) for line in f if line.strip())
        vectors = VectorIndex.load(root, manifest["vectors"]) if manifest.get("vectors") else VectorIndex(1)
        if len(entries) < len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(entries)} items")
        vectors.progress = runtime.show_progress()
        entries = entries[: len(vectors)]
        index = Index(root, manifest, entries, vectors)
        if manifest.get("centre"):
            index.centre = np.load(root / manifest["centre"], allow_pickle=False)
        if manifest.get("discriminant"):
            index.projection = np.load(root / manifest["discriminant"]["file"], allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{root}: damaged similarity index ({type(exc).__name__}: {exc})") from None
    return index


def add_to_index(directory: str | os.PathLike[str], data: str | os.PathLike[str], task: str | None = None,
                 backbone: str | None = None, text_column: str = "text", label_column: str = "label"
                 ) -> tuple[Index, dict[str, Any]]:
    """Add DATA's items to the saved index (no rebuild: new vectors are appended and, for a large index, inserted
    into its graph); items already in it (same path, or same ``file:line``) are skipped. Returns the index and a
    summary of this call (``added``, ``already_indexed``, ``skipped_count``, ...)."""
    index = load_index(directory)
    if backbone is not None and resolve_backbone(index.modality, backbone) != index.backbone:
        raise UserError(f"{directory} was built with {index.backbone}; --add embeds with the same backbone "
                        f"(leave out --backbone, or build a new index for {backbone})")
    kind = collection_task(data, task, text_column)
    if kind != index.modality:
        raise UserError(f"{data} holds {kind}s but {directory} is an index of {index.modality}s "
                        f"({index.backbone})")
    found = read_collection(data, kind, text_column, label_column)
    summary = _add_collection(index, found, data)
    return index, summary


def is_index(directory: str | os.PathLike[str]) -> bool:
    return (Path(directory) / MANIFEST).is_file()


__all__ = ["Index", "add_to_index", "build_index", "embed", "is_index", "load_index", "resolve_backbone"]
