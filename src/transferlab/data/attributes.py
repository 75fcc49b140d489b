"""A table of classes by binary attributes, for zero-shot classification by attributes.

The file is a CSV (or TSV): a header row whose first cell names the class column and whose other cells name the
attributes, then one row per class: its name, then 0 or 1 for each attribute (``yes``/``no`` and ``true``/``false``
are read as 1/0 too). Blank lines and lines starting with ``#`` are skipped, so the file can say where its
descriptions came from. Everything wrong with it is a :class:`DataError` naming the line, the class or the value.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.errors import DataError

TRUE_VALUES = frozenset({"1", "1.0", "yes", "true", "y"})
FALSE_VALUES = frozenset({"0", "0.0", "no", "false", "n"})


@dataclass
class AttributeTable:
    """``matrix[i, j]`` is 1 when class ``classes[i]`` has attribute ``attributes[j]``."""

    classes: list[str]
    attributes: list[str]
    matrix: np.ndarray  # (classes, attributes) float32 of 0/1
    source: str = ""

    def rows(self, names: list[str]) -> np.ndarray:
        """The signatures of the named classes, in that order."""
        where = {c: i for i, c in enumerate(self.classes)}
        return self.matrix[[where[n] for n in names]]

    def find(self, name: str) -> str | None:
        """The table's spelling of a class name: exact, else the one class equal to it ignoring case."""
        if name in self.classes:
            return name
        folded = [c for c in self.classes if c.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None


def _binary(value: str) -> float | None:
    v = value.strip().lower()
    if v in TRUE_VALUES:
        return 1.0
    if v in FALSE_VALUES:
        return 0.0
    return None


def read_attribute_table(path: str | os.PathLike[str]) -> AttributeTable:
    """Read and check a classes x attributes CSV (see the module docstring for the format)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such attributes file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    lines = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1)
             if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{p}: empty; expected a header (class,attribute1,attribute2,...) and one row per class")
    header_line, header = lines[0]
    names = [h.strip() for h in header]
    attributes = names[1:]
    while attributes and not attributes[-1]:  # a trailing comma
        attributes.pop()
    if not attributes:
        raise DataError(f"{p}: no attribute columns; the header needs the class column and at least one attribute "
                        "(class,striped,dotted,...)")
    blank = [i + 2 for i, a in enumerate(attributes) if not a]
    if blank:
        raise DataError(f"{p} line {header_line}: attribute column {blank[0]} has no name")
    seen: set[str] = set()
    for a in attributes:
        if a in seen:
            raise DataError(f"{p} line {header_line}: attribute {a!r} appears twice in the header")
        seen.add(a)
    classes: list[str] = []
    rows: list[list[float]] = []
    for n, row in lines[1:]:
        cells = [c.strip() for c in row]
        while len(cells) > len(attributes) + 1 and not cells[-1]:
            cells.pop()
        name = cells[0]
        if not name:
            raise DataError(f"{p} line {n}: no class name in the first column")
        if len(cells) != len(attributes) + 1:
            raise DataError(f"{p} line {n}: class {name!r} has {len(cells) - 1} values for {len(attributes)} "
                            "attributes")
        if name in classes:
            raise DataError(f"{p} line {n}: class {name!r} appears twice")
        values = []
        for attribute, cell in zip(attributes, cells[1:], strict=True):
            v = _binary(cell)
            if v is None:
                raise DataError(f"{p} line {n}: class {name!r}, attribute {attribute!r}: {cell!r} is not binary "
                                "(use 0 or 1)")
            values.append(v)
        classes.append(name)
        rows.append(values)
    if len(classes) < 2:
        raise DataError(f"{p}: needs at least two classes (rows), found {len(classes)}")
    return AttributeTable(classes, attributes, np.asarray(rows, dtype=np.float32), str(p))
