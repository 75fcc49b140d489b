"""The strategy contract, after scikit-learn's estimators.

``__init__`` only stores its keyword arguments; ``fit(X, y=None)`` returns ``self``; learned state ends in ``_``
(``classes_``, ``head_``, ``history_``) and exists only after ``fit``. That is what lets ``compare`` clone any
strategy and lets one conformance test run over all of them.

``X`` is a dataset (an :class:`~transferlab.data.ImageDataset`, or a text dataset); ``y`` defaults to its labels.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from transferlab.errors import UserError


class Strategy:
    name: ClassVar[str] = ""
    modality: ClassVar[str] = "image"
    summary: ClassVar[str] = ""
    multi_backbone: ClassVar[bool] = False  # ``backbone`` names a pool of backbones (``a+b``, ``all``), not one

    # --- parameters ----------------------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Strategy:
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise UserError(
                    f"strategy {self.name!r} has no parameter {key!r}; it takes: {', '.join(sorted(valid))}")
            setattr(self, key, value)
        return self

    def clone(self) -> Strategy:
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def backbones_needed(cls, backbone: str) -> list[str]:
        """The backbones whose features a run with this ``backbone`` parameter reads (``compare`` extracts them
        once, up front)."""
        return [backbone]

    # --- learning --------------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> Strategy:  # noqa: N803
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        proba = self.predict_proba(X)
        return np.asarray(self.classes_)[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any = None) -> float:  # noqa: N803
        truth = np.asarray(X.labels if y is None else y)
        return float((self.predict(X) == truth).mean())

    # --- saving ----------------------------------------------------------------------------------------------------
    def save_weights(self, directory: Path) -> dict[str, Any]:
        """Write learned weights into ``directory``; return what the loader needs to know (JSON-able)."""
        raise NotImplementedError

    def check_is_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit first")

    @staticmethod
    def labels_of(X: Any, y: Any) -> tuple[np.ndarray, list[str]]:  # noqa: N803
        """Integer labels and class names from ``y`` or the dataset's own labels."""
        classes = list(X.classes)
        labels = X.labels if y is None else list(y)
        if labels is None:
            raise UserError("fit needs labels")
        if len(labels) and not isinstance(labels[0], str) and np.issubdtype(np.asarray(labels).dtype, np.integer):
            return np.asarray(labels, np.int64), classes
        index = {c: i for i, c in enumerate(classes)}
        return np.asarray([index[str(v)] for v in labels], np.int64), classes
