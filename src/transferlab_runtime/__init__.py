"""Run a model exported by ``transferlab export`` with onnxruntime, NumPy, Pillow and tokenizers only.

This one file is copied into every export directory: put it beside your code (or the export folder on
``sys.path``) and::

    from transferlab_runtime import load
    model = load("ants_bees_onnx")
    model.predict(["a.jpg", open("b.png", "rb").read()])      # images: paths, bytes, PIL images, uint8 arrays
    model.predict(["a fine film", "dull"], top_k=2)           # texts
    model.answer(["Who?"], ["A passage."])                    # a question-answering reader

Images are decoded and resized exactly as transferlab does in training and prediction (JPEG draft decoding to the
resize, EXIF rotation, transparency over white, shorter side resized then centre-cropped) and handed to the graph as
uint8 pixels; the normalisation, the network and the head are inside ``model.onnx``. Texts become token ids with the
saved ``tokenizer.json``, or, for bag-of-words models, ids and counts of the saved n-gram vocabulary.

No torch, scikit-learn, transformers or transferlab import happens here (a test enforces it).
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ExportedModel", "ImageError", "load"]

MAX_PIXELS = 64_000_000  # larger images are refused as possible decompression bombs (as in transferlab)
# Pillow's own bomb warning only adds noise: the size check below refuses more than MAX_PIXELS. One process filter,
# not a catch_warnings() per image, which restores the filters of the whole process from whatever thread decodes.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
IMAGE_BATCH = 16
TEXT_BATCH = 16
TOKEN_BUDGET = 4096  # padded tokens per text batch
_INTERPOLATION = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                  "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


class ImageError(ValueError):
    """An input that is not a usable image; its message is the reason shown for that input."""


# --- images ----------------------------------------------------------------------------------------------------------
def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if mode != "RGB" else img


def decode_image(source: Any, draft_size: int | None = None, max_pixels: int = MAX_PIXELS,
                 formats: Sequence[str] | None = None) -> Image.Image:
    """An image file's path or bytes, a PIL image or a uint8 array as upright 8-bit RGB; :class:`ImageError` with
    the reason otherwise. ``formats`` (e.g. ``("JPEG", "PNG")``) refuses other file formats before decoding."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8:
            raise ImageError(f"image array must be uint8 (0-255), got {source.dtype}")
        if source.ndim == 3 and source.shape[2] == 1:
            source = source[:, :, 0]
        if not (source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (3, 4))):
            raise ImageError(f"image array must be H x W x 3 (RGB), got shape {source.shape}")
        source = Image.fromarray(np.ascontiguousarray(source))
    if isinstance(source, Image.Image):
        img, draft_size = source, None
    else:
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
        elif isinstance(source, str | os.PathLike):
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise ImageError(f"cannot read file ({exc.strerror or exc})") from None
        else:
            raise ImageError(f"not an image input ({type(source).__name__})")
        if not data:
            raise ImageError("empty file (0 bytes)")
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError("not an image (format not recognised)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError("image too large: refused as a possible decompression bomb") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for malformed headers
            raise ImageError(f"unreadable image header ({type(exc).__name__}: {exc})") from None
        if formats is not None and img.format not in formats:
            raise ImageError(f"image format {img.format} is not accepted (accepted: {', '.join(formats)})")
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(f"image too large: {w}x{h} = {w * h:,} pixels exceeds {max_pixels:,} "
                         "(possible decompression bomb)")
    if w == 0 or h == 0:
        raise ImageError("image has zero width or height")
    try:
        if draft_size and img.format == "JPEG":
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image too large: refused as a possible decompression bomb") from None
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageError("truncated image file (the end of the file is missing)") from None
        raise ImageError(f"corrupt image data ({exc})") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageError(f"corrupt image data ({type(exc).__name__}: {exc})") from None


def resize_and_crop(img: Image.Image, size: int, resize: int, interpolation: str) -> np.ndarray:
    """Shorter side to ``resize``, then the centre ``size`` x ``size`` crop, as (size, size, 3) uint8."""
    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), _INTERPOLATION[interpolation])
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


# --- texts -----------------------------------------------------------------------------------------------------------
class NgramCounter:
    """The n-grams of a text that are in the saved vocabulary, as scikit-learn's ``TfidfVectorizer`` finds them
    (lowercase; word n-grams by the token pattern; character n-grams within word boundaries, padded by a space)."""

    _white_spaces = re.compile(r"\s\s+")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.pattern = re.compile(spec["token_pattern"])
        self.lowercase = bool(spec.get("lowercase", True))
        self.parts = [(p["kind"], int(p["max_n"]), {t: p["offset"] + i for i, t in enumerate(p["vocabulary"])})
                      for p in spec["parts"]]

    def _words(self, text: str, max_n: int) -> list[str]:
        tokens = self.pattern.findall(text)
        grams = list(tokens)
        for n in range(2, min(max_n, len(tokens)) + 1):
            grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return grams

    def _chars(self, text: str, max_n: int) -> list[str]:
        grams = []
        for w in self._white_spaces.sub(" ", text).split():
            w = " " + w + " "
            for n in range(2, max_n + 1):
                offset = 0
                grams.append(w[offset:offset + n])
                while offset + n < len(w):
                    offset += 1
                    grams.append(w[offset:offset + n])
                if offset == 0:
                    break
        return grams

    def count(self, text: str) -> Counter[int]:
        text = text.lower() if self.lowercase else text
        counts: Counter[int] = Counter()
        for kind, max_n, vocabulary in self.parts:
            grams = self._words(text, max_n) if kind == "word" else self._chars(text, max_n)
            counts.update(vocabulary[g] for g in grams if g in vocabulary)
        return counts


def _pad(rows: Sequence[Sequence[Any]], fill: Any, dtype: Any) -> np.ndarray:
    out = np.full((len(rows), max(1, max(len(r) for r in rows))), fill, dtype)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while (end < len(order) and end - start < batch_size
               and (end - start + 1) * lengths[order[end]] <= TOKEN_BUDGET):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def describe(source: Any) -> Any:
    """What a prediction shows as its ``input``: a path or text as given, a short description of in-memory data."""
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<bytes {len(bytes(source))}>"
    if isinstance(source, Image.Image):
        return f"<PIL.Image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(str(n) for n in source.shape)} {source.dtype}>"
    return source


# --- question answering ------------------------------------------------------------------------------------------
MAX_QUESTION_TOKENS = 64  # longer questions are cut there, or no room is left for the context


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def decode_spans(example: Sequence[int], offsets: Sequence[Sequence[tuple[int, int] | None]],
                 logits: Sequence[np.ndarray], contexts: Sequence[str], n_best: int = 20, max_answer_tokens: int = 30,
                 null_threshold: float | None = None) -> list[dict[str, Any]]:
    """The best answer per (question, context) pair from the (length, 2) start/end logits of its windows:
    ``{"answer", "start" (character), "score", "candidates"}``. ``example[w]`` is the pair of window ``w`` and
    ``offsets[w][t]`` the (start, end) characters of its token ``t`` in the context (None outside the context).

    Per window, the top ``n_best`` start and end tokens, pairs with end >= start at most ``max_answer_tokens`` long,
    scored by start + end logit; the same characters from overlapping windows count once, at their best. ``score``
    is a softmax over the n-best candidates' scores (relative confidence among them). ``answer`` is "" and
    ``start`` -1 when no span is possible or, with ``null_threshold``, when the [CLS] "no answer" score beats the
    best span by more than it. transferlab decodes with this same function, so an export answers as the saved
    reader does."""
    per_pair: list[list[tuple[float, int, int]]] = [[] for _ in contexts]
    null = np.full(len(contexts), np.inf)
    for w, lg in enumerate(logits):
        p = int(example[w])
        offs = offsets[w]
        null[p] = min(null[p], float(lg[0, 0] + lg[0, 1]))
        ctx = np.asarray([t for t, o in enumerate(offs) if o is not None], np.int64)
        if not len(ctx):
            continue
        s_log, e_log = lg[ctx, 0], lg[ctx, 1]
        top_s = ctx[np.argsort(-s_log)[:n_best]]
        top_e = ctx[np.argsort(-e_log)[:n_best]]
        for s in top_s:
            for e in top_e:
                if e < s or e - s + 1 > max_answer_tokens:
                    continue
                a, b = offs[s][0], offs[e][1]  # type: ignore[index]
                per_pair[p].append((float(lg[s, 0] + lg[e, 1]), a, b))
    out = []
    for p, cands in enumerate(per_pair):
        cands.sort(key=lambda c: -c[0])
        best: dict[tuple[int, int], float] = {}
        for score, a, b in cands:
            if (a, b) not in best:
                best[(a, b)] = score
            if len(best) >= n_best:
                break
        spans = list(best.items())
        scores = np.asarray([s for _, s in spans] + ([null[p]] if null_threshold is not None else []), np.float64)
        probs = _softmax(scores) if len(scores) else scores
        ctx_text = contexts[p]
        candidates = [{"answer": ctx_text[a:b], "start": a, "score": float(pr)}
                      for ((a, b), _), pr in zip(spans, probs, strict=False)]
        if not spans or (null_threshold is not None and null[p] - spans[0][1] > null_threshold):
            out.append({"answer": "", "start": -1, "score": float(probs[-1]) if len(probs) else 1.0,
                        "candidates": candidates})
        else:
            out.append({**candidates[0], "candidates": candidates})
    return out


class QAWindows:
    """Windows of (question, context) pairs as transferlab's reader encodes them, with the ``tokenizers`` library
    alone: the question cut at :data:`MAX_QUESTION_TOKENS` tokens (by characters), then the pair encoded question
    first with only the context truncated to ``max_length`` tokens and ``stride`` tokens of overlap between windows."""

    def __init__(self, tokenizer_file: str | os.PathLike[str], max_length: int, stride: int) -> None:
        from tokenizers import Tokenizer

        self.plain = Tokenizer.from_file(str(tokenizer_file))
        self.plain.no_padding()
        self.plain.no_truncation()
        self.pairs = Tokenizer.from_file(str(tokenizer_file))
        self.pairs.no_padding()
        self.pairs.enable_truncation(int(max_length), stride=int(stride), strategy="only_second")

    def encode(self, questions: Sequence[str], contexts: Sequence[str]
               ) -> tuple[list[list[int]], list[list[int]], list[int], list[list[tuple[int, int] | None]]]:
        """(ids, type ids, pair index, context offsets) per window, windows of one pair consecutive."""
        cut = []
        for q, enc in zip(questions, self.plain.encode_batch(list(questions), add_special_tokens=False), strict=True):
            cut.append(q[: enc.offsets[MAX_QUESTION_TOKENS - 1][1]] if len(enc.offsets) > MAX_QUESTION_TOKENS else q)
        ids, types, example, offsets = [], [], [], []
        for p, enc in enumerate(self.pairs.encode_batch(list(zip(cut, contexts, strict=True)))):
            for window in [enc, *enc.overflowing]:
                ids.append(list(window.ids))
                types.append(list(window.type_ids))
                example.append(p)
                offsets.append([tuple(o) if s == 1 else None for o, s in zip(window.offsets, window.sequence_ids,
                                                                             strict=True)])
        return ids, types, example, offsets


# --- the model -------------------------------------------------------------------------------------------------------
class ExportedModel:
    """An exported classifier: ``predict(inputs, top_k)`` and ``predict_proba(inputs)``; ``labels``, ``task`` and
    ``info`` (the export's ``export.json``: strategy, backbone, metrics, data report summary, preprocessing)."""

    def __init__(self, directory: str | os.PathLike[str], threads: int | None = None,
                 image_formats: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.directory = Path(directory)
        try:
            self.info: dict[str, Any] = json.loads((self.directory / "export.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.directory}: not a transferlab export (no export.json)") from None
        self.labels: list[str] = list(self.info["labels"])
        self.task: str = self.info.get("task", "image")
        self.image_formats = tuple(image_formats) if image_formats else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or os.environ.get("TRANSFERLAB_THREADS", 0) or os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.directory / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = self.info["inputs"]
        self._tokenizer = None
        self._ngrams: NgramCounter | None = None
        self._windows: QAWindows | None = None
        first = self.inputs[0]
        if first["kind"] == "tokens":
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.directory / first["tokenizer"]))
            tok.no_padding()
            tok.enable_truncation(int(first["max_length"]))
            self._tokenizer = tok
        elif first["kind"] == "ngrams":
            self._ngrams = NgramCounter(json.loads((self.directory / first["ngrams"]).read_text(encoding="utf-8")))
        elif first["kind"] == "qa_tokens":
            self._windows = QAWindows(self.directory / first["tokenizer"], int(first["max_length"]),
                                      int(first["stride"]))

    # question answering
    def answer(self, questions: Sequence[str], contexts: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """A question-answering export: the best answer per (question, context) pair, ``{"answer", "start",
        "score", "candidates"}``, as ``transferlab qa ask`` answers it. Windows of similar length share batches."""
        if self.task != "qa":
            raise ValueError(f"this is a {self.task} classifier: use predict()")
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        spec = self.inputs[0]
        assert self._windows is not None
        ids, types, example, offsets = self._windows.encode(questions, contexts)
        logits: list[np.ndarray] = [np.zeros((0, 2), np.float32)] * len(ids)
        for idx in _length_batches([len(x) for x in ids], batch_size):
            feed = {spec["name"]: _pad([ids[i] for i in idx], int(spec["pad_id"]), np.int64),
                    spec["mask"]: _pad([[1] * len(ids[i]) for i in idx], 0, np.int64)}
            if spec.get("type_ids"):  # BERT-like readers; MPNet takes none
                feed[spec["type_ids"]] = _pad([types[i] for i in idx], 0, np.int64)
            out = self.session.run([self.info["output"]], feed)[0]
            for r, i in enumerate(idx):
                logits[i] = out[r, : len(ids[i])]
        return decode_spans(example, offsets, logits, contexts, int(spec["n_best"]), int(spec["max_answer_tokens"]),
                            spec.get("null_threshold"))

    # images
    def _pixels(self, source: Any) -> dict[str, np.ndarray]:
        """Each graph input's pixels; each decoded with its own JPEG draft size, as each ensemble member's feature
        extractor decodes in transferlab."""
        out, decoded = {}, {}
        for spec in self.inputs:
            p, resize = spec["preprocessing"], int(spec["resize"])
            if resize not in decoded:
                decoded[resize] = decode_image(source, draft_size=resize, formats=self.image_formats)
            out[spec["name"]] = resize_and_crop(decoded[resize], int(p["size"]), resize, p["interpolation"])
        return out

    def _image_proba(self, inputs: Sequence[Any]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        ok, failures, rows = [], {}, []
        batch: list[dict[str, np.ndarray]] = []
        batch_idx: list[int] = []

        def flush() -> None:
            feed = {s["name"]: np.stack([b[s["name"]] for b in batch]) for s in self.inputs}
            rows.append(self.session.run(["probabilities"], feed)[0])
            ok.extend(batch_idx)
            batch.clear()
            batch_idx.clear()

        for i, source in enumerate(inputs):
            try:
                batch.append(self._pixels(source))
            except ImageError as exc:
                failures[i] = str(exc)
                continue
            batch_idx.append(i)
            if len(batch) == IMAGE_BATCH:
                flush()
        if batch:
            flush()
        proba = np.concatenate(rows) if rows else np.zeros((0, len(self.labels)))
        return proba, ok, failures

    # texts
    def _text_proba(self, inputs: Sequence[Any]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        texts, ok, failures = [], [], {}
        for i, item in enumerate(inputs):
            if not isinstance(item, str):
                failures[i] = f"not a text ({type(item).__name__}): this model classifies texts"
            elif not item.strip():
                failures[i] = "empty text"
            else:
                texts.append(item.strip())
                ok.append(i)
        proba = np.zeros((len(texts), len(self.labels)))
        if not texts:
            return proba, ok, failures
        spec = self.inputs[0]
        if self._ngrams is not None:
            counted = [self._ngrams.count(t) for t in texts]
            for idx in _length_batches([len(c) for c in counted], 256):
                ids = _pad([list(counted[i].keys()) for i in idx], 0, np.int64)
                cnt = _pad([list(counted[i].values()) for i in idx], 0.0, np.float32)
                proba[idx] = self.session.run(["probabilities"], {spec["name"]: ids, spec["counts"]: cnt})[0]
            return proba, ok, failures
        assert self._tokenizer is not None
        encoded = [e.ids for e in self._tokenizer.encode_batch(texts)]
        for idx in _length_batches([len(e) for e in encoded], TEXT_BATCH):
            seqs = [encoded[i] for i in idx]
            ids = _pad(seqs, int(spec["pad_id"]), np.int64)
            mask = _pad([[1] * len(s) for s in seqs], 0, np.int64)
            proba[idx] = self.session.run(["probabilities"], {spec["name"]: ids, spec["mask"]: mask})[0]
        return proba, ok, failures

    def predict_proba(self, inputs: Sequence[Any]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """(probabilities (n usable, n classes) float64, indices of the usable inputs, {index: reason} for the
        others). One unusable input never stops the rest."""
        if self.task == "qa":
            raise ValueError("this export is a question-answering reader: use answer(questions, contexts)")
        inputs = [inputs] if isinstance(inputs, str | bytes | os.PathLike | Image.Image) else list(inputs)
        return self._image_proba(inputs) if self.task == "image" else self._text_proba(inputs)

    def predict(self, inputs: Sequence[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """One entry per input, in order: ``{"input", "label", "probabilities": {label: p}}`` with the ``top_k``
        most likely labels, or ``{"input", "error"}``; the same shape as ``transferlab predict --json``."""
        inputs = [inputs] if isinstance(inputs, str | bytes | os.PathLike | Image.Image) else list(inputs)
        proba, ok, failures = self.predict_proba(inputs)
        k = max(1, min(int(top_k), len(self.labels)))
        row_of = {i: r for r, i in enumerate(ok)}
        out = []
        for i, item in enumerate(inputs):
            if i in failures:
                out.append({"input": describe(item), "error": failures[i]})
                continue
            p = proba[row_of[i]]
            top = np.argsort(-p, kind="stable")[:k]
            out.append({"input": describe(item), "label": self.labels[int(top[0])],
                        "probabilities": {self.labels[int(j)]: float(p[j]) for j in top}})
        return out


def load(directory: str | os.PathLike[str], threads: int | None = None,
         image_formats: Sequence[str] | None = None) -> ExportedModel:
    """The model exported into ``directory`` by ``transferlab export``."""
    return ExportedModel(directory, threads=threads, image_formats=image_formats)
