"""Image datasets: a folder of class folders, a train/val folder pair, or a CSV of ``path,label``.

:func:`load_image` turns any file Pillow reads into an upright 8-bit RGB image (grayscale, CMYK, RGBA, palette,
16-bit and EXIF-rotated included) or raises :class:`~transferlab.errors.ImageDecodeError` with a reason a person
understands (empty, truncated, not an image, too large). A bad file never stops a run: it is left out and named in
the data report.
"""

from __future__ import annotations

import csv
import io
import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from transferlab.data.report import DataReport
from transferlab.errors import DataError, ImageDecodeError

ImageFile.LOAD_TRUNCATED_IMAGES = False
MAX_PIXELS = 64_000_000  # larger files are refused as possible decompression bombs
# Pillow warns (89M-179M pixels) or raises (more) when it opens a huge image: _decoded refuses anything over
# MAX_PIXELS itself, with the size in the message, so the warning only adds noise. One filter for the process, not a
# warnings.catch_warnings() per image: that saves and restores the process-wide filters, and from the decoding threads
# it undid other threads' filters (the ONNX export's silence: its tracer warnings reached the user's terminal).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
EVAL_SPLIT_NAMES = ("val", "valid", "validation", "test")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0  # 16-bit range -> 8-bit
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


ImageInput: TypeAlias = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray
"""What prediction takes as one image: a file path, the bytes of an image file, a PIL image, or a uint8 array
(H x W x 3 RGB; H x W grey and H x W x 4 RGBA are converted too)."""


def is_in_memory(source: object) -> bool:
    """Whether ``source`` is an already decoded image (PIL or array) rather than a file or its bytes."""
    return isinstance(source, (Image.Image, np.ndarray))


def describe_input(source: object) -> object:
    """What a prediction entry shows as its ``input``: the path (as text) or a short JSON-serialisable description of
    in-memory data (``"<bytes 1234>"``, ``"<PIL.Image RGB 64x48>"``, ``"<array 48x64x3 uint8>"``). Texts and rows
    are returned unchanged."""
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes {len(source if not isinstance(source, memoryview) else source.tobytes())}>"
    if isinstance(source, Image.Image):
        return f"<PIL.Image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(str(n) for n in source.shape)} {source.dtype}>"
    return source


def _array_image(pixels: np.ndarray) -> Image.Image:
    """A uint8 (H, W, 3) RGB array (or (H, W) grey, (H, W, 1), (H, W, 4) RGBA) as a PIL image."""
    if pixels.dtype != np.uint8:
        raise ImageDecodeError(f"image array must be uint8 (0-255), got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ImageDecodeError(f"image array must be H x W x 3 (RGB), got shape {pixels.shape}")
    return Image.fromarray(np.ascontiguousarray(pixels))  # uint8: L, RGB or RGBA by the shape


def load_image(source: ImageInput, draft_size: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read an image file, its bytes, a PIL image or a uint8 array as upright 8-bit RGB.

    ``draft_size`` lets JPEG decoding skip resolution that a later resize to that shorter side would throw away (for
    files and bytes only: a PIL image the caller holds is never changed). Anything unusable, an unsupported type
    included, raises :class:`ImageDecodeError` with the reason, so one bad input never stops a batch; a path that
    cannot be read raises ``OSError``.
    """
    if isinstance(source, np.ndarray):
        source = _array_image(source)
    if isinstance(source, Image.Image):
        return _decoded(source, None, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = Path(source).read_bytes()
    else:
        raise ImageDecodeError(f"not an image input ({type(source).__name__}): give a path, file bytes, a PIL image "
                               "or a uint8 array")
    if len(data) == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("image too large: refused as a possible decompression bomb") from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ImageDecodeError(f"unreadable image header ({type(exc).__name__}: {exc})") from None
    return _decoded(img, draft_size, max_pixels)


def _decoded(img: Image.Image, draft_size: int | None, max_pixels: int) -> Image.Image:
    """An opened (possibly not yet loaded) image, size-checked, decoded, EXIF-rotated and converted to RGB."""
    w, h = img.size
    if w * h > max_pixels:
        raise ImageDecodeError(
            f"image too large: {w}x{h} = {w * h:,} pixels exceeds {max_pixels:,} (possible decompression bomb)"
        )
    if w == 0 or h == 0:
        raise ImageDecodeError("image has zero width or height")
    try:
        if draft_size and img.format == "JPEG":
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("image too large: refused as a possible decompression bomb") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg:
            raise ImageDecodeError("truncated image file (the end of the file is missing)") from None
        raise ImageDecodeError(f"corrupt image data ({msg})") from None
    except Exception as exc:
        raise ImageDecodeError(f"corrupt image data ({type(exc).__name__}: {exc})") from None


@dataclass
class ImageDataset:
    """Image paths with their class labels (or no labels, for prediction)."""

    paths: list[str]
    labels: list[str] | None = None
    classes: list[str] = field(default_factory=list)
    source: str = ""

    modality = "image"

    def __post_init__(self) -> None:
        if self.labels is not None:
            if len(self.labels) != len(self.paths):
                raise ValueError("paths and labels differ in length")
            if not self.classes:
                self.classes = sorted(set(self.labels))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def y(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this dataset has no labels")
        index = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([index[label] for label in self.labels], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> ImageDataset:
        return ImageDataset(
            paths=[self.paths[i] for i in indices],
            labels=None if self.labels is None else [self.labels[i] for i in indices],
            classes=list(self.classes),
            source=self.source,
        )

    def without(self, bad_paths: set[str]) -> ImageDataset:
        keep = [i for i, p in enumerate(self.paths) if p not in bad_paths]
        return self.subset(keep)

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike[str]]) -> ImageDataset:
        return cls(paths=[str(p) for p in paths], labels=None, source="paths")

    @classmethod
    def from_folder(cls, root: str | os.PathLike[str]) -> ImageDataset:
        """One subfolder per class; every regular file inside (recursively) is an item of that class."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: not a folder")
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        paths: list[str] = []
        labels: list[str] = []
        for d in class_dirs:
            for dirpath, dirnames, filenames in os.walk(d):
                dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        paths.append(os.path.join(dirpath, name))
                        labels.append(d.name)
        return cls(paths=paths, labels=labels, classes=[d.name for d in class_dirs], source=str(root))

    @classmethod
    def from_csv(cls, csv_path: str | os.PathLike[str], path_column: str = "path",
                 label_column: str = "label") -> ImageDataset:
        """A CSV with a header naming the path and label columns; relative paths are relative to the CSV."""
        csv_path = Path(csv_path)
        try:
            text = csv_path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise DataError(f"{csv_path}: no rows")
        for column in (path_column, label_column):
            if column not in rows[0]:
                raise DataError(f"{csv_path}: no column {column!r} (columns: {', '.join(rows[0].keys())})")
        paths, labels = [], []
        for row in rows:
            p, label = (row[path_column] or "").strip(), (row[label_column] or "").strip()
            if not p or not label:
                continue
            full = Path(p) if Path(p).is_absolute() else csv_path.parent / p
            paths.append(str(full))
            labels.append(label)
        return cls(paths=paths, labels=labels, source=str(csv_path))


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, eval): ``fraction`` of each class to eval, at least one item of each class kept in train."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    train, held = [], []
    for label in sorted(by_class):
        idx = by_class[label][:]
        rng.shuffle(idx)
        n_eval = min(len(idx) - 1, int(round(len(idx) * fraction)))
        held.extend(idx[:n_eval])
        train.extend(idx[n_eval:])
    return sorted(train), sorted(held)


def _find_eval_dir(root: Path, eval_split: str | None) -> Path | None:
    if eval_split:
        d = root / eval_split
        if not d.is_dir():
            raise DataError(f"{root}: no {eval_split}/ folder for --eval-split {eval_split}")
        return d
    for name in EVAL_SPLIT_NAMES:
        if (root / name).is_dir():
            return root / name
    return None


def has_fixed_split(data: str | os.PathLike[str], eval_split: str | None = None) -> bool:
    """Whether DATA is a folder with train/ and its own evaluation folder (rather than one to split)."""
    root = Path(data)
    return root.is_dir() and (root / "train").is_dir() and _find_eval_dir(root, eval_split) is not None


def check_classes(ds: ImageDataset, where: str) -> None:
    counts = {c: 0 for c in ds.classes}
    for label in ds.labels or []:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        found = f"only {next(iter(counts))!r}" if counts else "none"
        raise DataError(f"{where}: need at least two classes to train a classifier, found {found}")
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"{where}: class folder(s) with no usable images: {', '.join(empty)}")


def resolve_image_data(data: str | os.PathLike[str], val_fraction: float = 0.2, seed: int = 0,
                       eval_split: str | None = None) -> tuple[ImageDataset, ImageDataset, DataReport]:
    """DATA -> (train, eval, report) following the CLI's rules (see ``transferlab train --help``)."""
    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    report = DataReport(source=str(root))
    if root.is_file():
        if root.suffix.lower() not in (".csv", ".tsv"):
            raise DataError(f"{root}: expected a folder of class folders or a CSV of path,label")
        full = ImageDataset.from_csv(root)
        check_classes(full, str(root))
        tr, ev = stratified_split(full.labels or [], val_fraction, seed)
        train, evaluation = full.subset(tr), full.subset(ev)
        report.notes.append(f"evaluation split: {val_fraction:.0%} of each class, stratified, seed {seed}")
    elif (root / "train").is_dir() and _find_eval_dir(root, eval_split) is not None:
        eval_dir = _find_eval_dir(root, eval_split)
        assert eval_dir is not None
        train = ImageDataset.from_folder(root / "train")
        check_classes(train, str(root / "train"))
        evaluation = ImageDataset.from_folder(eval_dir)
        unknown = sorted(set(evaluation.classes) - set(train.classes))
        if unknown:
            raise DataError(f"{eval_dir}: classes not in train/: {', '.join(unknown)}")
        evaluation.classes = list(train.classes)
        report.notes.append(f"evaluation split: {eval_dir.name}/")
    else:
        full = ImageDataset.from_folder(root)
        check_classes(full, str(root))
        tr, ev = stratified_split(full.labels or [], val_fraction, seed)
        train, evaluation = full.subset(tr), full.subset(ev)
        report.notes.append(f"evaluation split: {val_fraction:.0%} of each class, stratified, seed {seed}")
    if len(evaluation) == 0:
        raise DataError(f"{root}: the evaluation split is empty; add images or raise --val-fraction")
    return train, evaluation, report


def thumbnail(source: ImageInput, size: int = 160) -> Image.Image | None:
    """An RGB thumbnail (at most ``size`` pixels a side) of any image input, or None when it cannot be read: what
    contact sheets and reports show, decoded at draft size so large JPEGs stay cheap."""
    try:
        img = load_image(source, draft_size=size)
    except (ImageDecodeError, OSError):
        return None
    img.thumbnail((size, size))
    return img


def thumbnail_data_uri(source: ImageInput, size: int = 160) -> str | None:
    """:func:`thumbnail` as an embeddable JPEG ``data:`` URI (self-contained HTML pages), or None."""
    import base64

    img = thumbnail(source, size)
    if img is None:
        return None
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
