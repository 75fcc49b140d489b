"""Items to search among: every image under a folder, or every text of one or more files, labelled when the data
says so.

A similarity index needs no split and no labels, unlike training: a folder of images is taken whole (class folders
give labels when present; ``train/`` and ``val/`` levels are looked through, so a training layout indexes as one
labelled collection), and a text file's label column is used when it has one. Each item keeps an id a person can
find again: the image's path, or ``file:line`` of a text.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.data.images import EVAL_SPLIT_NAMES
from transferlab.data.report import DataReport
from transferlab.data.texts import TEXT_SUFFIXES, _cell, _rows, decode_bytes, looks_like_text_data
from transferlab.errors import DataError, UserError

SPLIT_FOLDERS = {"train", "training", "dev", *EVAL_SPLIT_NAMES}  # looked through when naming an image's class


@dataclass
class Collection:
    """What to index: ``items`` (image paths or texts), ``ids`` (what a search result names), ``labels`` (a
    class per item, None where the data gives none) and the report of what was left out."""

    task: str
    items: list[str]
    ids: list[str]
    labels: list[str | None]
    report: DataReport = field(default_factory=lambda: DataReport(source=""))

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: Sequence[int]) -> Collection:
        idx = list(indices)
        return Collection(self.task, [self.items[i] for i in idx], [self.ids[i] for i in idx],
                          [self.labels[i] for i in idx], self.report)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def image_suffixes() -> set[str]:
    """File suffixes Pillow can open (``.jpg``, ``.png``, ``.webp``, ...): what a folder is searched for."""
    from PIL import Image

    Image.init()
    return {s.lower() for s in Image.registered_extensions()}


def _is_text_folder(root: Path) -> bool:
    """A folder of texts: tables (CSV/TSV/JSONL) or ``.txt`` files at its top, and no subfolders or images
    (a README beside them does not count)."""
    entries = [p for p in root.iterdir() if not _hidden(p.name)]
    if any(p.is_dir() for p in entries):
        return False
    images = image_suffixes()
    if any(p.suffix.lower() in images for p in entries):
        return False
    return any(p.suffix.lower() in (*TABLE_SUFFIXES, ".txt") for p in entries)


def _csv_columns(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        header = next(csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
    return [h.strip() for h in header]


def collection_task(data: str | os.PathLike[str], task: str | None = None, text_column: str = "text") -> str:
    """"image" or "text": ``task`` when given, else text for a text file (or a CSV with ``text_column``) or a
    folder holding only text files, images otherwise."""
    if task is not None:
        if task not in ("image", "text"):
            raise UserError(f"--task {task}: choose image or text")
        return task
    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_dir():
        return "text" if _is_text_folder(root) else "image"
    suffix = root.suffix.lower()
    if suffix in (".csv", ".tsv"):
        if looks_like_text_data(root, text_column):
            return "text"
        if "path" in _csv_columns(root):
            return "image"
        raise DataError(f"{root}: no column {text_column!r} (texts; name it with --text-column) and no column "
                        "'path' (images)")
    return "text" if suffix in TEXT_SUFFIXES else "image"


def image_label(path: Path, root: Path) -> str | None:
    """The class of an image under ``root``: its first folder below ``root``, looking through split folders
    (``train/``, ``val/``, ...); None for an image that lies directly in ``root``."""
    parts = [p for p in path.relative_to(root).parts[:-1]]
    while parts and parts[0].lower() in SPLIT_FOLDERS:
        parts = parts[1:]
    return parts[0] if parts else None


def read_images(data: str | os.PathLike[str]) -> Collection:
    """Every visible image file under a folder (recursively, sorted; a suffix Pillow reads, or none), a single
    image file, or a CSV with a ``path`` column (``label`` optional; relative paths are relative to the CSV).
    Files that turn out not to be images are left out later, when their features are extracted."""
    root = Path(data)
    report = DataReport(source=str(root))
    if root.is_file() and root.suffix.lower() in (".csv", ".tsv"):
        with open(root, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if root.suffix.lower() == ".tsv" else ","))
        paths, labels = [], []
        for row in rows:
            p = (row.get("path") or "").strip()
            if not p:
                continue
            full = Path(p) if Path(p).is_absolute() else root.parent / p
            paths.append(str(full.resolve()))
            labels.append((row.get("label") or "").strip() or None)
        return Collection("image", paths, list(paths), labels, report)
    if root.is_file():
        path = str(root.resolve())
        return Collection("image", [path], [path], [None], report)
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder")
    base = root.resolve()
    images = image_suffixes()
    paths, labels = [], []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(n for n in dirnames if not _hidden(n))
        for name in sorted(filenames):
            suffix = Path(name).suffix.lower()
            if _hidden(name) or (suffix and suffix not in images):  # READMEs, CSVs, ...: not images
                continue
            full = Path(dirpath) / name
            paths.append(str(full))
            labels.append(image_label(full, base))
    return Collection("image", paths, list(paths), labels, report)


def _text_files(root: Path) -> list[Path]:
    """The files of a text folder: its tables (CSV/TSV/JSONL), or when it has none its ``.txt`` files."""
    if not root.is_dir():
        return [root]
    files = sorted(p for p in root.iterdir() if p.is_file() and not _hidden(p.name))
    tables = [p for p in files if p.suffix.lower() in TABLE_SUFFIXES]
    return tables or [p for p in files if p.suffix.lower() == ".txt"]


def read_texts(data: str | os.PathLike[str], text_column: str = "text", label_column: str = "label") -> Collection:
    """Every non-empty text of a CSV/TSV/JSONL file (``text_column``; ``label_column`` when the file has it), of a
    ``.txt`` file (one text per line), or of every table in a folder (``train.csv`` and ``val.csv`` alike)."""
    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    report = DataReport(source=str(root))
    texts: list[str] = []
    ids: list[str] = []
    labels: list[str | None] = []
    for path in _text_files(root):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror})") from None
        decoded = decode_bytes(raw, str(path), report)
        if path.suffix.lower() == ".txt":
            for lineno, line in enumerate(decoded.splitlines(), start=1):
                if line.strip():
                    texts.append(line.strip())
                    ids.append(f"{path}:{lineno}")
                    labels.append(None)
            continue
        columns, rows = _rows(decoded, path)
        if text_column not in columns:
            raise DataError(f"{path}: no column {text_column!r} (columns: {', '.join(columns) or 'none'}); "
                            "name the text column with --text-column")
        has_labels = label_column in columns
        for lineno, row in rows:
            body = _cell(row.get(text_column)).strip()
            if not body:
                report.skip(f"{path}:{lineno}", "empty text")
                continue
            texts.append(body)
            ids.append(f"{path}:{lineno}")
            labels.append((_cell(row.get(label_column)).strip() or None) if has_labels else None)
    return Collection("text", texts, ids, labels, report)


def read_collection(data: str | os.PathLike[str], task: str | None = None, text_column: str = "text",
                    label_column: str = "label") -> Collection:
    """DATA -> the items to index, images or texts (see :func:`collection_task`). An empty result is an error: an
    index of nothing answers no query."""
    kind = collection_task(data, task, text_column)
    found = read_images(data) if kind == "image" else read_texts(data, text_column, label_column)
    if not found.items:
        what = "image files" if kind == "image" else "non-empty texts"
        raise DataError(f"{data}: no {what} to index")
    return found


__all__ = ["Collection", "collection_task", "image_label", "read_collection", "read_images", "read_texts"]
