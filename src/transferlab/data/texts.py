"""Loading and validating labelled text: CSV, TSV or JSON Lines, one example per row.

``DATA`` is a folder with ``train.csv`` and one of ``val.csv``/``valid.csv``/``dev.csv``/``test.csv`` (``.tsv`` and
``.jsonl`` too; ``--eval-split`` picks one), or a single file split stratified by ``--val-fraction``.

Bytes are decoded as UTF-8 (with or without a byte-order mark, or UTF-16 with one); a file that is not valid UTF-8
is decoded as Windows-1252, else Latin-1, and the data report says so, so nothing is silently mangled. Rows with an
empty text or a missing label are left out and listed in the report. Fewer than two classes, a missing column or an
unreadable file is a :class:`~transferlab.errors.DataError` with one clear line.

``feature_columns`` (``--feature-columns price,category``) also reads those columns, as raw strings (an empty cell
is a missing value), into ``TextDataset.features``; see :mod:`transferlab.data.side_features`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab.data.images import stratified_split
from transferlab.data.report import DataReport
from transferlab.errors import DataError

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".txt")
EVAL_SPLIT_NAMES = ("val", "valid", "dev", "test")
csv.field_size_limit(1 << 30)  # long documents (newsgroups posts) exceed csv's 128 KiB default


@dataclass
class TextDataset:
    """Texts with optional string labels; ``classes`` fixes the order of the model's outputs."""

    texts: list[str]
    labels: list[str] | None = None
    classes: list[str] = field(default_factory=list)
    sources: list[str] | None = None  # "file:line" of each row, for reports and mistakes
    features: dict[str, list[str]] | None = None  # side columns (--feature-columns): name -> raw cell per row
    feature_kinds: dict[str, str] | None = None  # explicit numeric/categorical kinds of some side columns

    def __post_init__(self) -> None:
        if self.labels is not None and not self.classes:
            self.classes = sorted(set(self.labels))

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def y(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("dataset has no labels")
        index = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([index[label] for label in self.labels], np.int64)

    @property
    def paths(self) -> list[str]:
        """What identifies each example in mistakes lists (the text itself, shortened)."""
        return [t if len(t) <= 200 else t[:197] + "..." for t in self.texts]

    def subset(self, indices: Sequence[int]) -> TextDataset:
        idx = list(indices)
        features = None if self.features is None else {k: [v[i] for i in idx] for k, v in self.features.items()}
        return TextDataset([self.texts[i] for i in idx],
                           None if self.labels is None else [self.labels[i] for i in idx],
                           list(self.classes),
                           None if self.sources is None else [self.sources[i] for i in idx],
                           features, self.feature_kinds)

    def concat(self, other: TextDataset) -> TextDataset:
        """This dataset's rows, then ``other``'s (same columns); classes in this dataset's order."""
        def join(a: list | None, b: list | None) -> list | None:
            return None if a is None or b is None else [*a, *b]

        features = None if self.features is None or other.features is None else {
            k: [*v, *other.features[k]] for k, v in self.features.items()}
        return TextDataset([*self.texts, *other.texts], join(self.labels, other.labels), list(self.classes),
                           join(self.sources, other.sources), features, self.feature_kinds)

    @classmethod
    def from_texts(cls, texts: Sequence[str], labels: Sequence[str] | None = None) -> TextDataset:
        return cls([str(t) for t in texts], None if labels is None else [str(v) for v in labels])

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, object]], text_column: str = "text",
                  feature_columns: Sequence[str] = (), label_column: str | None = None) -> TextDataset:
        """From dict-like rows (``{"text": ..., "price": ...}``); a side column left out of a row is missing."""
        texts = [_cell(r.get(text_column)) for r in rows]
        labels = None if label_column is None else [_cell(r.get(label_column)) for r in rows]
        features = {c: [_cell(r.get(c)).strip() for r in rows] for c in feature_columns} or None
        return cls(texts, labels, features=features)

    def rows(self, text_column: str = "text") -> list[dict[str, str]]:
        """One dict per example: the text under ``text_column`` and the side columns, as a saved model takes them."""
        out = [{text_column: t} for t in self.texts]
        for name, values in (self.features or {}).items():
            for row, v in zip(out, values, strict=True):
                row[name] = v
        return out

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], text_column: str = "text", label_column: str | None = "label",
                  report: DataReport | None = None, split: str = "",
                  feature_columns: Sequence[str] = ()) -> TextDataset:
        return read_text_file(path, text_column, label_column, report, split, feature_columns)


# --- decoding ----------------------------------------------------------------------------------------------------
def decode_bytes(data: bytes, where: str, report: DataReport | None = None) -> str:
    """UTF-8 (BOM or not), UTF-16 with a BOM; otherwise Windows-1252, then Latin-1, with a note in the report."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict") if _is_utf8(data[3:]) else _legacy(data[3:], where, report)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: starts with a UTF-16 byte-order mark but is not valid UTF-16 ({exc})") from None
    if _is_utf8(data):
        return data.decode("utf-8")
    return _legacy(data, where, report)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _legacy(data: bytes, where: str, report: DataReport | None) -> str:
    if b"\x00" in data:
        raise DataError(f"{where}: contains NUL bytes and is not UTF-8 or UTF-16 text; save it as UTF-8")
    try:
        text, encoding = data.decode("cp1252"), "Windows-1252 (cp1252)"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "Latin-1 (ISO-8859-1)"
    if report is not None:
        report.notes.append(f"{where}: not valid UTF-8; decoded as {encoding}. Save it as UTF-8 to be sure.")
    return text


# --- parsing -----------------------------------------------------------------------------------------------------
def _rows(text: str, path: Path) -> tuple[list[str], list[tuple[int, dict[str, object]]]]:
    """Column names and ``(line number, row)`` pairs."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        stripped = text.lstrip()
        if suffix == ".json" and stripped.startswith("["):
            try:
                items = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
            numbered = list(enumerate(items, start=1))
        else:
            numbered = []
            for lineno, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    numbered.append((lineno, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
        columns: list[str] = []
        rows = []
        for lineno, item in numbered:
            if not isinstance(item, dict):
                raise DataError(f"{path}: line {lineno} is not a JSON object with named fields")
            for key in item:
                if key not in columns:
                    columns.append(key)
            rows.append((lineno, item))
        return columns, rows
    if suffix == ".tsv":
        delimiter = "\t"
    elif suffix == ".csv":
        delimiter = ","
    else:
        first = text.split("\n", 1)[0]
        delimiter = max(("\t", ",", ";"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty")
        columns = [h.strip() for h in header]
        rows = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            rows.append((reader.line_num, dict(zip(columns, record, strict=False))))
    except csv.Error as exc:
        raise DataError(f"{path}: malformed {suffix.lstrip('.').upper() or 'delimited'} file near line "
                        f"{reader.line_num} ({exc})") from None
    return columns, rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    if isinstance(value, bool | int | float):
        return str(value)
    return str(value)


def read_text_file(path: str | os.PathLike[str], text_column: str = "text", label_column: str | None = "label",
                   report: DataReport | None = None, split: str = "",
                   feature_columns: Sequence[str] = ()) -> TextDataset:
    """Read one file; rows with an empty text or (when labels are wanted) an empty label go to ``report``.
    ``feature_columns`` are read too, as raw strings (empty when missing)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    text = decode_bytes(raw, str(p), report)
    columns, rows = _rows(text, p)
    if text_column not in columns:
        raise DataError(f"{p}: no column {text_column!r} (columns: {', '.join(columns) or 'none'}); "
                        "name the text column with --text-column")
    if label_column is not None and label_column not in columns:
        raise DataError(f"{p}: no column {label_column!r} (columns: {', '.join(columns)}); "
                        "name the label column with --label-column")
    for name in feature_columns:
        if name not in columns:
            raise DataError(f"{p}: no column {name!r} for --feature-columns (columns: {', '.join(columns)})")
    features: dict[str, list[str]] = {name: [] for name in feature_columns}
    texts, labels, sources = [], [], []
    for lineno, row in rows:
        where = f"{p}:{lineno}"
        body = _cell(row.get(text_column)).strip()
        if not body:
            if report is not None:
                report.skip(where, "empty text", split)
            continue
        if label_column is not None:
            label = _cell(row.get(label_column)).strip()
            if not label:
                if report is not None:
                    report.skip(where, "missing label", split)
                continue
            labels.append(label)
        texts.append(body)
        sources.append(where)
        for name, values in features.items():
            values.append(_cell(row.get(name)).strip())
    return TextDataset(texts, labels if label_column is not None else None, sources=sources,
                       features=features or None)


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """A plain text file of inputs for ``predict --file``: one text per non-empty line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    return [line.strip() for line in decode_bytes(raw, str(p)).splitlines() if line.strip()]


# --- finding the splits ------------------------------------------------------------------------------------------
def _find_split_file(root: Path, name: str) -> Path | None:
    for suffix in (".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
        if (root / f"{name}{suffix}").is_file():
            return root / f"{name}{suffix}"
    return None


def find_eval_file(root: Path, eval_split: str | None) -> Path | None:
    if eval_split:
        found = _find_split_file(root, eval_split)
        if found is None:
            raise DataError(f"{root}: no {eval_split}.csv (or .tsv/.jsonl) for --eval-split {eval_split}")
        return found
    for name in EVAL_SPLIT_NAMES:
        found = _find_split_file(root, name)
        if found is not None:
            return found
    return None


def looks_like_text_data(data: str | os.PathLike[str], text_column: str = "text") -> bool:
    """A folder with train.csv/.tsv/.jsonl, or a CSV/TSV/JSONL file whose header names ``text_column``."""
    p = Path(data)
    if p.is_dir():
        return _find_split_file(p, "train") is not None
    if not p.is_file() or p.suffix.lower() not in TEXT_SUFFIXES:
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
        first = decode_bytes(head, str(p)).splitlines()[0] if head.strip() else ""
    except (OSError, DataError, UnicodeDecodeError):
        return False
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return f'"{text_column}"' in first
    return text_column in [c.strip().strip('"') for c in first.replace("\t", ",").replace(";", ",").split(",")]


def check_text_classes(ds: TextDataset, where: str) -> None:
    present = sorted(set(ds.labels or []))
    if len(present) < 2:
        found = f"only {present[0]!r}" if present else "none"
        raise DataError(f"{where}: need at least two classes to train a classifier, found {found}")


def resolve_text_data(data: str | os.PathLike[str], text_column: str = "text", label_column: str = "label",
                      val_fraction: float = 0.2, seed: int = 0, eval_split: str | None = None,
                      feature_columns: str | Sequence[str] | None = None,
                      ) -> tuple[TextDataset, TextDataset, DataReport]:
    """(train, eval, report). Eval rows whose label the training split lacks are left out and reported.
    ``feature_columns`` (``"price,category"``, kinds optional: ``"zip:categorical"``) are read beside the text."""
    from transferlab.data.side_features import parse_feature_columns

    side_columns, side_kinds = parse_feature_columns(feature_columns)
    root = Path(data)
    report = DataReport(source=str(root))
    if root.is_dir():
        train_file = _find_split_file(root, "train")
        if train_file is None:
            raise DataError(f"{root}: no train.csv (or train.tsv/train.jsonl) in this folder")
        train_ds = read_text_file(train_file, text_column, label_column, report, "train", side_columns)
        eval_file = find_eval_file(root, eval_split)
        if eval_file is not None:
            eval_ds = read_text_file(eval_file, text_column, label_column, report, "eval", side_columns)
            report.notes.append(f"evaluation split: {eval_file.name}")
        else:
            train_ds, eval_ds = _split(train_ds, val_fraction, seed, report, str(train_file))
    elif root.is_file():
        if eval_split:
            raise DataError(f"{root}: --eval-split needs a folder with train and {eval_split} files")
        full = read_text_file(root, text_column, label_column, report, "train", side_columns)
        train_ds, eval_ds = _split(full, val_fraction, seed, report, str(root))
    else:
        raise DataError(f"{root}: no such file or folder")
    check_text_classes(train_ds, f"{root} (train split)")
    classes = sorted(set(train_ds.labels or []))
    train_ds.classes = classes
    known = set(classes)
    unknown = [i for i, label in enumerate(eval_ds.labels or []) if label not in known]
    if unknown:
        for i in unknown:
            report.skip(eval_ds.sources[i] if eval_ds.sources else str(i),
                        f"label {eval_ds.labels[i]!r} does not occur in the training split", "eval")  # type: ignore[index]
        eval_ds = eval_ds.subset([i for i in range(len(eval_ds)) if i not in set(unknown)])
    eval_ds.classes = classes
    if len(eval_ds) == 0:
        raise DataError(f"{root}: the evaluation split has no usable rows")
    if side_columns:
        train_ds.feature_kinds = eval_ds.feature_kinds = side_kinds
    report.set_counts("train", train_ds.labels or [])
    report.set_counts("eval", eval_ds.labels or [])
    return train_ds, eval_ds, report


def _split(ds: TextDataset, fraction: float, seed: int, report: DataReport, where: str
           ) -> tuple[TextDataset, TextDataset]:
    if not 0 < fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, got {fraction}")
    check_text_classes(ds, where)
    train_idx, eval_idx = stratified_split(ds.labels or [], fraction, seed)
    if not eval_idx:
        raise DataError(f"{where}: too few rows to hold out {fraction:.0%} for evaluation")
    report.notes.append(f"no evaluation file: held out {fraction:.0%} of each class (seed {seed})")
    return ds.subset(train_idx), ds.subset(eval_idx)


def class_names_are_words(classes: Sequence[str]) -> bool:
    """Whether every class name has a letter in it, so the names themselves say something (``0``/``1`` do not)."""
    return all(any(ch.isalpha() for ch in c) for c in classes)


def texts_of(X: object) -> list[str]:  # noqa: N803
    """The texts of a :class:`TextDataset`, or a list of strings as given."""
    if isinstance(X, TextDataset):
        return X.texts
    if isinstance(X, str):
        return [X]
    return [str(t) for t in X]  # type: ignore[attr-defined]
