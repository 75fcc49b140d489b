"""Side features for text classification: extra columns of a row (a price, a category) joined to the text features.

``--feature-columns price,category`` reads those columns beside the text and label. Each column is numeric when
every non-empty training value parses as a finite number, else categorical; ``price:categorical`` or
``zip:numeric`` overrides the guess. Numeric columns are standardised with the training mean and standard deviation
(a missing value becomes the mean, i.e. 0); categorical columns are one-hot encoded over the training levels plus a
``missing`` level, which also takes empty values and levels never seen in training.

The fitted encoder is plain JSON (``side_features.json`` in a saved model), so a saved model encodes new rows
without the training code. Strategies with a classifier head on features (``bow``, ``text_headless``,
``text_fewshot``) append the encoded block to their text features.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError

MISSING = "missing"
KINDS = ("numeric", "categorical")
_KIND_ALIASES = {"numeric": "numeric", "num": "numeric", "number": "numeric", "categorical": "categorical",
                 "cat": "categorical", "category": "categorical"}
FILE = "side_features.json"


def parse_feature_columns(spec: str | Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """``"price,category:categorical"`` (or a list of such items) -> (column names, kinds given explicitly)."""
    if spec is None:
        return [], {}
    items = spec.split(",") if isinstance(spec, str) else [part for s in spec for part in str(s).split(",")]
    columns: list[str] = []
    kinds: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, _, kind = item.partition(":")
        name = name.strip()
        if not name:
            raise UserError(f"--feature-columns: empty column name in {item!r}")
        if kind.strip():
            if kind.strip().lower() not in _KIND_ALIASES:
                raise UserError(f"--feature-columns: {name}:{kind} - the kind must be numeric or categorical")
            kinds[name] = _KIND_ALIASES[kind.strip().lower()]
        if name in columns:
            raise UserError(f"--feature-columns: column {name!r} named twice")
        columns.append(name)
    return columns, kinds


def cell_text(value: object) -> str:
    """A cell as a stripped string; None and NaN are empty (missing)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def guess_kind(values: Sequence[str]) -> str:
    """numeric when every non-empty value parses as a finite float (and there is at least one), else categorical."""
    present = [v for v in values if v]
    return "numeric" if present and all(_number(v) is not None for v in present) else "categorical"


class SideFeatureEncoder:
    """Numeric columns standardised, categorical ones one-hot over their training levels plus ``missing``.

    ``columns`` is a list of dicts: ``{"name", "kind": "numeric", "mean", "std"}`` or
    ``{"name", "kind": "categorical", "levels": [..., "missing"]}``; the output columns follow that order."""

    def __init__(self, columns: list[dict[str, Any]]) -> None:
        self.columns = columns

    @classmethod
    def fit(cls, values: Mapping[str, Sequence[str]], kinds: Mapping[str, str] | None = None) -> SideFeatureEncoder:
        kinds = dict(kinds or {})
        columns: list[dict[str, Any]] = []
        for name, raw in values.items():
            cells = [cell_text(v) for v in raw]
            kind = kinds.get(name) or guess_kind(cells)
            if kind == "numeric":
                numbers = [_number(v) for v in cells if v]
                bad = [v for v, x in zip([v for v in cells if v], numbers, strict=True) if x is None]
                if bad:
                    raise UserError(f"side feature {name!r} is marked numeric but has the value {bad[0]!r}")
                xs = np.asarray([x for x in numbers if x is not None], np.float64)
                mean = float(xs.mean()) if len(xs) else 0.0
                std = float(xs.std()) if len(xs) else 0.0
                columns.append({"name": name, "kind": "numeric", "mean": mean, "std": std if std > 1e-12 else 1.0})
            else:
                levels = sorted({v for v in cells if v and v != MISSING})
                columns.append({"name": name, "kind": "categorical", "levels": [*levels, MISSING]})
        return cls(columns)

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def width(self) -> int:
        return sum(1 if c["kind"] == "numeric" else len(c["levels"]) for c in self.columns)

    def feature_names(self) -> list[str]:
        out = []
        for c in self.columns:
            out.extend([c["name"]] if c["kind"] == "numeric" else [f"{c['name']}={lv}" for lv in c["levels"]])
        return out

    def transform(self, values: Mapping[str, Sequence[object]]) -> np.ndarray:
        """(n, width) float32 from raw column values (strings, numbers or None)."""
        missing = [c["name"] for c in self.columns if c["name"] not in values]
        if missing:
            raise UserError(f"side feature column(s) missing: {', '.join(missing)}")
        n = len(values[self.columns[0]["name"]]) if self.columns else 0
        blocks = []
        for c in self.columns:
            cells = [cell_text(v) for v in values[c["name"]]]
            if c["kind"] == "numeric":
                xs = np.full((n, 1), c["mean"], np.float64)
                for i, v in enumerate(cells):
                    x = _number(v) if v else None
                    if x is not None:
                        xs[i, 0] = x
                    elif v:
                        raise UserError(f"side feature {c['name']!r} is numeric but got {v!r}")
                blocks.append((xs - c["mean"]) / c["std"])
            else:
                index = {lv: j for j, lv in enumerate(c["levels"])}
                onehot = np.zeros((n, len(c["levels"])), np.float64)
                for i, v in enumerate(cells):
                    onehot[i, index.get(v, index[MISSING])] = 1.0
                blocks.append(onehot)
        return (np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))).astype(np.float32)

    def transform_rows(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        """The same from dict-like rows (a key left out of a row counts as missing)."""
        return self.transform({c["name"]: [row.get(c["name"]) for row in rows] for c in self.columns})

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "columns": self.columns}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SideFeatureEncoder:
        return cls([dict(c) for c in doc["columns"]])

    def save(self, directory: Path) -> str:
        (directory / FILE).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        return FILE

    @classmethod
    def load(cls, path: Path) -> SideFeatureEncoder:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


# --- what strategies call --------------------------------------------------------------------------------------
def fit_side_features(X: Any) -> SideFeatureEncoder | None:  # noqa: N803
    """An encoder fitted on the side columns of a :class:`~transferlab.text.data.TextDataset`, or None when it has
    none."""
    features = getattr(X, "features", None)
    if not features:
        return None
    return SideFeatureEncoder.fit(features, getattr(X, "feature_kinds", None))


def side_matrix(encoder: SideFeatureEncoder | None, X: Any) -> np.ndarray | None:  # noqa: N803
    """The encoded side columns of ``X`` for a fitted ``encoder`` (None when the model uses none)."""
    if encoder is None:
        return None
    features = getattr(X, "features", None)
    if not features:
        raise UserError("this model was trained with side features (" + ", ".join(encoder.names) +
                        "); give rows with those columns, e.g. a CSV through --file")
    return encoder.transform(features)


def join_dense(text_features: np.ndarray, side: np.ndarray | None) -> np.ndarray:
    return text_features if side is None else np.concatenate([text_features, side.astype(text_features.dtype)], 1)


def join_sparse(text_features: Any, side: np.ndarray | None) -> Any:
    if side is None:
        return text_features
    import scipy.sparse as sp

    return sp.hstack([text_features, sp.csr_matrix(side.astype(np.float32))], format="csr")
