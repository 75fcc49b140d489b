"""Frozen-backbone features, computed once and cached on disk.

One pass over the images yields every output a strategy or analysis may want:

- ``features``: the pooled final feature map (what ``headless`` and ``frozen_head`` train on),
- ``logits``: the backbone's own ImageNet-1k head (zero-shot and domain-closeness advice),
- ``mid``: pooled maps of earlier stages (lower-level features for data far from ImageNet).

Extraction runs the backbone exported to ONNX (exported once into the cache folder) through ONNX Runtime, in
batches, decoding the next batch on a worker thread while the current one runs. Memory stays flat: each batch is
written to the cache as soon as it is done (a read-only cache, the one prediction uses, keeps nothing). Inputs are
paths, or for prediction also file bytes, PIL images and arrays (see :func:`content_digest`).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from transferlab._torch import torch_thread_count
from transferlab.backbones import BackboneSpec, get_backbone
from transferlab.cache import FeatureCache, bytes_digest
from transferlab.data.images import ImageInput, is_in_memory, load_image
from transferlab.errors import ImageDecodeError
from transferlab.preprocessing import Preprocessing
from transferlab.progress import log, progress_bar

OUTPUTS = ("features", "logits", "mid")


def feature_key(spec: BackboneSpec, prep: Preprocessing, output: str) -> str:
    return f"{spec.name}|w{spec.weights_version}|{prep.key()}|{output}"


EXPORT_FORMAT = 2  # bump when the exported graph changes, so cached exports are redone


def onnx_file(spec: BackboneSpec, prep: Preprocessing, cache_dir: Path) -> Path:
    tag = hashlib.sha1(f"{spec.name}|{spec.weights_version}|{prep.size}|{EXPORT_FORMAT}".encode()).hexdigest()[:10]
    return cache_dir / "onnx" / f"{spec.name}-{prep.size}px-{tag}.onnx"


def onnx_model_path(spec: BackboneSpec, prep: Preprocessing, cache_dir: Path) -> Path:
    """The backbone exported to ONNX with three outputs; exported on first use (this needs torch)."""
    path = onnx_file(spec, prep, cache_dir)
    if path.exists():
        return path
    log(f"preparing {spec.name} at {prep.size} px for ONNX Runtime (once per cache folder, {cache_dir})")
    import torch

    from transferlab.backbones.net import AllOutputs

    path.parent.mkdir(parents=True, exist_ok=True)
    net = AllOutputs(spec.build(pretrained=True)).eval()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    dummy = torch.zeros(1, 3, prep.size, prep.size)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (dummy,), str(tmp), dynamo=False, input_names=["image"], output_names=list(OUTPUTS),
            dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in OUTPUTS}}, opset_version=17,
        )
    fold_pads_into_convs(tmp)
    os.replace(tmp, path)
    return path


def fold_pads_into_convs(path: Path) -> int:
    """Rewrite an exported graph in place so that zero-padding ``Pad`` nodes become the next ``Conv``'s ``pads``.

    TensorFlow-style "same" padding exports as a separate (asymmetric) ``Pad`` before each strided convolution.
    ONNX Runtime's blocked-layout (NCHWc) convolutions cannot run through a ``Pad``, so each one costs two layout
    reorders; folded into the convolution, Lite0 extraction runs about a third faster with identical outputs.
    Constant pad amounts are first resolved by ONNX Runtime's basic (portable) constant folding. Returns the
    number of ``Pad`` nodes folded.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(path)
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(path))
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    folded = 0
    for node in list(graph.node):
        if node.op_type != "Pad" or node.input[1] not in constants:
            continue
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        value = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        users = consumers.get(node.output[0], [])
        if mode != b"constant" or (value is not None and float(value) != 0.0) or len(users) != 1:
            continue
        conv = users[0]
        pads = constants[node.input[1]].tolist()
        rank = len(pads) // 2
        if conv.op_type != "Conv" or any(pads[i] or pads[rank + i] for i in (0, 1)) or min(pads) < 0:
            continue
        attrs = {a.name: a for a in conv.attribute}
        if attrs.get("auto_pad") is not None and attrs["auto_pad"].s not in (b"", b"NOTSET"):
            continue
        old = list(attrs["pads"].ints) if "pads" in attrs else [0] * (2 * (rank - 2))
        new = [a + b for a, b in zip(old, pads[2:rank] + pads[rank + 2:], strict=True)]
        if "pads" in attrs:
            conv.attribute.remove(attrs["pads"])
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = node.input[0]
        graph.node.remove(node)
        folded += 1
    onnx.save(model, str(path))
    return folded


def make_session(model_path: Path):  # noqa: ANN201 - onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch_thread_count()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # no busy-waiting between runs: with two sessions taking turns (an ensemble) each one's spinning threads took
    # the cores from the other and doubled the per-image latency; a single session runs as fast without it
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


_SESSIONS: dict[Path, object] = {}
PREFETCH_WHILE_EXPORTING = 32  # batches of uint8 pixels: ~150 MB at 224 px, whatever the dataset size


def _session_for(path: Path):  # noqa: ANN202
    """One ONNX Runtime session per exported model per process (creating one takes a fraction of a second)."""
    if path not in _SESSIONS:
        _SESSIONS[path] = make_session(path)
    return _SESSIONS[path]


def content_digest(item: object) -> tuple[str | None, object]:
    """(digest, source) of one image input for the cache, or (None, the reason it cannot be used).

    A path or file bytes: the SHA-1 of the file's bytes (so a path and its bytes share cache entries); the path
    itself is read again when its features are computed, so large datasets are never held in memory. A PIL image
    or array: decoded to RGB now (the source is that image) and digested over its pixels and size; such a digest
    never equals a file's, and a PIL image of a JPEG may differ a little from the file (no draft decoding)."""
    if isinstance(item, str | os.PathLike):
        try:
            return bytes_digest(Path(item).read_bytes()), item
        except FileNotFoundError:
            return None, "file not found"
        except IsADirectoryError:
            return None, "is a folder, not a file"
        except OSError as exc:
            return None, f"cannot read file ({exc.strerror})"
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item)
        return bytes_digest(data), data
    if is_in_memory(item):
        try:
            img = load_image(item)  # type: ignore[arg-type]
        except ImageDecodeError as exc:
            return None, exc.reason
        return bytes_digest(f"rgb|{img.width}x{img.height}|".encode() + img.tobytes()), img
    return None, (f"not an image input ({type(item).__name__}): give a path, file bytes, a PIL image or a uint8 "
                  "array")


@dataclass
class Extracted:
    """Arrays for the usable items (in input order) and the reasons the others were left out."""

    arrays: dict[str, np.ndarray]
    ok: list[int]
    failures: dict[int, str] = field(default_factory=dict)
    cache_hits: int = 0
    computed: int = 0


class FeatureExtractor:
    """Extract (and cache) frozen features of one backbone."""

    def __init__(self, backbone: str | BackboneSpec = "efficientnet_lite0", cache: FeatureCache | None = None,
                 batch_size: int = 32, input_size: int | None = None, engine: str = "onnx",
                 progress: bool = True) -> None:
        self.spec = get_backbone(backbone) if isinstance(backbone, str) else backbone
        self.prep = self.spec.preprocessing if input_size is None else self.spec.preprocessing.with_size(input_size)
        self.cache = cache if cache is not None else FeatureCache()
        self.batch_size = batch_size
        self.engine = engine
        self.progress = progress
        self._runner = None

    # --- the network --------------------------------------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._runner is None:
            if self.engine == "onnx":
                session = _session_for(onnx_model_path(self.spec, self.prep, self.cache.directory))
                self._runner = lambda x: dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"image": x}), strict=True))
            elif self.engine == "torch":
                import torch

                from transferlab._torch import set_torch_threads

                set_torch_threads()
                net = self.spec.build(pretrained=True).eval()

                def run_torch(x: np.ndarray) -> dict[str, np.ndarray]:
                    with torch.inference_mode():
                        outs = net.forward_all(torch.from_numpy(x))
                    return {name: o.numpy() for name, o in zip(OUTPUTS, outs, strict=True)}

                self._runner = run_torch
            else:
                raise ValueError(f"unknown engine {self.engine!r}")
        return self._runner(batch)

    def run_arrays(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run already preprocessed inputs (N, 3, H, W) through the backbone; no cache."""
        return self._run(np.ascontiguousarray(batch, dtype=np.float32))

    # --- decoding ---------------------------------------------------------------------------------------------
    def _prepare(self, source: bytes | Image.Image) -> np.ndarray | str:
        """File bytes (or an already decoded RGB image) -> resized, cropped uint8 pixels, or the reason the input
        cannot be used."""
        if isinstance(source, Image.Image):
            return self.prep.to_uint8(source)
        try:
            img = load_image(source, draft_size=self.prep.resize)
            return self.prep.to_uint8(img)
        except ImageDecodeError as exc:
            return exc.reason

    def _load(self, source: object) -> np.ndarray | str:
        """A path (read now), file bytes or a decoded image -> the network's uint8 pixels, or why it cannot be used."""
        if isinstance(source, str | os.PathLike):
            try:
                source = Path(source).read_bytes()
            except OSError as exc:
                return f"cannot read file ({exc.strerror})"
        return self._prepare(source)  # type: ignore[arg-type]

    # --- the public call -------------------------------------------------------------------------------------
    def extract(self, inputs: Sequence[ImageInput], outputs: Sequence[str] = ("features",),
                desc: str = "extracting features") -> Extracted:
        """Features of image inputs: file paths (what training passes), or for prediction also file bytes, PIL images
        and uint8 arrays. Each is looked up by its content digest, so the bytes of a cached file hit the cache."""
        keys = {o: feature_key(self.spec, self.prep, o) for o in OUTPUTS}
        digests: list[str | None] = []
        sources: dict[int, object] = {}  # what _compute decodes, for inputs that are not paths
        failures: dict[int, str] = {}
        for i, item in enumerate(inputs):
            digest, source = content_digest(item)
            digests.append(digest)
            if digest is None:
                failures[i] = str(source)
            elif source is not item:
                sources[i] = source
        known = [d for d in digests if d is not None]
        cached = {o: self.cache.get_many(keys[o], known) for o in outputs}
        known_bad = self.cache.get_failures(known)
        todo: dict[str, str] = {}  # digest -> one path with that content
        for i, d in enumerate(digests):
            if d is None:
                continue
            if d in known_bad:
                failures[i] = known_bad[d]
            elif any(d not in cached[o] for o in outputs):
                todo.setdefault(d, sources.get(i, inputs[i]))
        computed = self._compute(todo, keys, cached, outputs, desc) if todo else {}
        for i, d in enumerate(digests):
            if d is not None and d in computed:
                failures[i] = computed[d]
        ok = [i for i in range(len(inputs)) if i not in failures]
        arrays = {}
        for o in outputs:
            dim = None
            rows = []
            for i in ok:
                v = cached[o][digests[i]]  # type: ignore[index]
                dim = v.shape[-1]
                rows.append(v)
            arrays[o] = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim or 0), np.float32)
        hits = len([i for i in ok if digests[i] not in todo])
        return Extracted(arrays=arrays, ok=ok, failures=dict(sorted(failures.items())), cache_hits=hits,
                         computed=len(todo))

    def unreadable(self, inputs: Sequence[ImageInput], desc: str = "reading images") -> dict[int, str]:
        """The inputs that cannot be used, with the reason, found by decoding them as :meth:`extract` would (the
        same resize and crop) but without running the network: for a split whose features may never be needed (an
        evaluation split scored by other backbones). Inputs whose features are cached are not decoded again."""
        failures: dict[int, str] = {}
        todo: dict[int, object] = {}
        digests: dict[int, str] = {}
        for i, item in enumerate(inputs):
            digest, source = content_digest(item)
            if digest is None:
                failures[i] = str(source)
            else:
                digests[i], todo[i] = digest, source
        known = list(dict.fromkeys(digests.values()))
        cached = self.cache.get_many(feature_key(self.spec, self.prep, "features"), known)
        known_bad = self.cache.get_failures(known)
        for i, d in digests.items():
            if d in known_bad:
                failures[i] = known_bad[d]
                todo.pop(i)
            elif d in cached:
                todo.pop(i)

        bar = progress_bar(total=len(todo), desc=desc, unit="img", enabled=self.progress)
        # Pillow decodes and resizes without holding the GIL: the cores share the work
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for i, prepared in zip(todo, pool.map(self._load, todo.values()), strict=True):
                bar.update(1)
                if isinstance(prepared, str):
                    failures[i] = prepared
        bar.close()
        self.cache.put_failures([(digests[i], failures[i]) for i in todo if i in failures])
        return dict(sorted(failures.items()))

    def _compute(self, todo: dict[str, object], keys: dict[str, str], cached: dict[str, dict[str, np.ndarray]],
                 outputs: Sequence[str], desc: str) -> dict[str, str]:
        """Compute every output for the given contents (digest -> a path, file bytes or a decoded image); fill
        ``cached``; store the new vectors in the cache (a no-op for a read-only one); return digest -> failure."""
        items = list(todo.items())
        bad: dict[str, str] = {}
        batches = [items[s : s + self.batch_size] for s in range(0, len(items), self.batch_size)]

        def load_batch(batch: list[tuple[str, object]]) -> list[np.ndarray | str]:
            return [self._load(source) for _digest, source in batch]

        bar = progress_bar(total=len(items), desc=desc, unit="img", enabled=self.progress)
        # Decode ahead on a worker thread while the network runs; while the ONNX model is still being exported
        # (first use of a backbone) the worker gets several batches ahead. The queue is bounded: memory stays flat.
        exporting = self.engine == "onnx" and not onnx_file(self.spec, self.prep, self.cache.directory).exists()
        depth = PREFETCH_WHILE_EXPORTING if exporting else 2
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = deque(pool.submit(load_batch, b) for b in batches[:depth])
            for b, batch in enumerate(batches):
                prepared = pending.popleft().result()
                if b + depth < len(batches):
                    pending.append(pool.submit(load_batch, batches[b + depth]))
                good = [(d, x) for (d, _), x in zip(batch, prepared, strict=True) if not isinstance(x, str)]
                failed = [(d, x) for (d, _), x in zip(batch, prepared, strict=True) if isinstance(x, str)]
                if good:
                    result = self._run(self.prep.normalize_batch(np.stack([x for _, x in good])))
                    for o in OUTPUTS:
                        vectors = [(d, result[o][j]) for j, (d, _) in enumerate(good)]
                        self.cache.put_many(keys[o], vectors)
                        if o in cached:
                            cached[o].update((d, v.astype(np.float32)) for d, v in vectors)
                if failed:
                    self.cache.put_failures(failed)
                    bad.update(failed)
                bar.update(len(batch))
        bar.close()
        return bad
