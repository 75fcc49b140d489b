"""One entry point to labelled data of any modality: which task DATA is, its train and evaluation splits, and the
labelled set a saved model is evaluated on.

The modality is a property of the data (a folder of class folders or a CSV of ``path,label`` is images; a CSV/JSONL
with a text column, or a folder with ``train.csv``, is text); everything above this module takes a
:class:`LabelledData` and never asks which reader made it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.data.images import ImageDataset, has_fixed_split, resolve_image_data
from transferlab.data.report import DataReport
from transferlab.data.texts import TEXT_SUFFIXES, TextDataset, find_eval_file, looks_like_text_data, resolve_text_data
from transferlab.errors import DataError, UserError

TASKS = ("image", "text")


@dataclass
class Columns:
    """Which columns of a table hold the text, the label and the side features (text data)."""

    text: str = "text"
    label: str = "label"
    features: str | Sequence[str] | None = None

    def side(self) -> list[str]:
        from transferlab.data.side_features import parse_feature_columns

        return parse_feature_columns(self.features)[0]


@dataclass
class LabelledData:
    """A train split, an evaluation split and the report of what was read (and left out)."""

    task: str
    train: Any  # ImageDataset | TextDataset
    eval: Any
    report: DataReport
    fixed: bool  # the evaluation split is a folder or file of its own (not drawn at random)
    columns: Columns = field(default_factory=Columns)

    def everything(self) -> Any:
        """Train and evaluation rows together (for cross-validation and re-splitting)."""
        return concat(self.train, self.eval)


def detect_task(data: str | os.PathLike[str], task: str | None = None, text_column: str = "text") -> str:
    """``task`` if given, else text when DATA is a CSV/JSONL with a text column or a folder with train.csv."""
    if task is not None:
        if task not in TASKS:
            raise UserError(f"--task {task}: choose one of {', '.join(TASKS)}")
        return task
    return "text" if looks_like_text_data(data, text_column) else "image"


def load_labelled(data: str | os.PathLike[str], task: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                  eval_split: str | None = None, columns: Columns | None = None) -> LabelledData:
    """DATA -> :class:`LabelledData` following the CLI's rules (see ``transferlab train --help``)."""
    columns = columns or Columns()
    task = detect_task(data, task, columns.text)
    if task == "image":
        if columns.features:
            raise UserError("--feature-columns is for text data (--task text)")
        train, ev, report = resolve_image_data(data, val_fraction=val_fraction, seed=seed, eval_split=eval_split)
        return LabelledData(task, train, ev, report, has_fixed_split(data, eval_split), columns)
    train, ev, report = resolve_text_data(data, columns.text, columns.label, val_fraction, seed, eval_split,
                                          columns.features)
    root = Path(data)
    fixed = root.is_dir() and find_eval_file(root, eval_split) is not None
    return LabelledData(task, train, ev, report, fixed, columns)


def load_eval_set(data: str | os.PathLike[str], task: str, eval_split: str | None, columns: Columns,
                  report: DataReport) -> Any:
    """The labelled set to evaluate a saved model on: a folder's evaluation split (``val/``, ``test.csv``, ...),
    a folder of class folders, or one file."""
    root = Path(data)
    if task == "image":
        from transferlab.data.images import _find_eval_dir

        if has_fixed_split(root, eval_split):
            return ImageDataset.from_folder(_find_eval_dir(root, eval_split))  # type: ignore[arg-type]
        if root.is_file() and looks_like_text_data(root, columns.text) and not looks_like_text_data(root, "path"):
            raise DataError(f"{root}: texts (a '{columns.text}' column), but the model classifies images: evaluate it "
                            "on a folder of class folders of images, or a CSV with path,label columns")
        if root.is_dir():
            return ImageDataset.from_folder(root)
        if root.is_file():
            return ImageDataset.from_csv(root)
        raise DataError(f"{root}: no such file or folder")
    from transferlab.data.texts import read_text_file

    if root.is_dir():
        found = find_eval_file(root, eval_split)
        if found is None and any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
            raise DataError(f"{root}: a folder of folders (images?), but the model classifies texts: evaluate it on "
                            "a CSV/JSONL of text,label, or a folder with val.csv or test.csv")
        if found is None:
            raise DataError(f"{root}: no val/valid/dev/test file (.csv, .tsv or .jsonl) to evaluate on")
        return read_text_file(found, columns.text, columns.label, report, "eval", columns.side())
    if root.is_file():
        return read_text_file(root, columns.text, columns.label, report, "eval", columns.side())
    raise DataError(f"{root}: no such file or folder")


def model_inputs(ds: Any, columns: Columns) -> list[Any]:
    """What a saved model predicts from: image paths, texts, or rows (text + side columns)."""
    if isinstance(ds, TextDataset):
        return ds.rows(columns.text) if columns.side() else list(ds.texts)
    return list(ds.paths)


def concat(a: Any, b: Any) -> Any:
    if isinstance(a, TextDataset):
        return a.concat(b)
    return ImageDataset(a.paths + b.paths, (a.labels or []) + (b.labels or []), list(a.classes), a.source)


def fingerprint(ds: Any) -> str:
    """What identifies a dataset's rows for the result cache: image files by path, size and modification time;
    texts by their content, labels and side columns."""
    h = hashlib.sha1()
    if isinstance(ds, TextDataset):
        for i, text in enumerate(ds.texts):
            label = ds.labels[i] if ds.labels else ""
            side = [str(col[i]) for col in (ds.features or {}).values()] if ds.features else []
            h.update(f"{text}\x1f{label}\x1f{'|'.join(side)}\n".encode())
        return h.hexdigest()
    for p in ds.paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def data_files_fingerprint(data: str | os.PathLike[str]) -> str:
    """The files of DATA themselves (a folder's own data files, not whatever else lives beside them)."""
    root = Path(data)
    if root.is_file():
        files = [root]
    elif looks_like_text_data(root):
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha1()
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
