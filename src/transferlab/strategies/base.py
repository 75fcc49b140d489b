"""The strategy contract: every strategy is a scikit-learn classifier.

``__init__`` only stores its keyword arguments; ``fit(X, y=None)`` returns ``self``; learned state ends in ``_``
(``classes_``, ``head_``, ``history_``) and exists only after ``fit``. Deriving from scikit-learn's
``BaseEstimator`` and ``ClassifierMixin`` (not merely looking like them) is what lets ``compare`` clone any
strategy, lets ``cross_val_score`` and ``GridSearchCV`` use one as they use any classifier, and lets one conformance
test (tests/test_estimators.py) run scikit-learn's own checks over all of them.

``X`` is a dataset (an :class:`~transferlab.data.images.ImageDataset`, or a
:class:`~transferlab.data.texts.TextDataset`; ``y`` then defaults to its labels), or a plain sequence (list or
NumPy array): image file paths for image strategies, texts for text strategies, with ``y`` the labels (strings or
ints). :meth:`Strategy._as_dataset` turns a plain sequence into the dataset of the strategy's modality, so the
strategies themselves only ever see datasets.
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from transferlab.errors import DataError, ParameterError, UserError

SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's random_state range: a seed is 0..SEED_MAX


def check_param_values(cls: type, params: dict[str, Any]) -> None:
    """Raise :class:`~transferlab.errors.ParameterError` for a value of a number-only parameter of ``cls.__init__``
    (annotated ``int`` or ``float``, optionally ``| None``) that is not such a number: ``--param C=abc`` or
    ``epochs=2.5`` is bad input, named here, not a ``TypeError`` deep inside ``fit``. Likewise a yes/no parameter
    (``bool``, optionally ``| None``) takes true, false (or 0, 1), never a string: ``bf16=False`` is the string
    "False", which Python reads as true. A ``seed`` is in numpy's range (0 to ``SEED_MAX``). Parameters that also take
    strings are the estimator's to check."""
    signature = inspect.signature(cls.__init__)
    for name, value in params.items():
        param = signature.parameters.get(name)
        annotation = param.annotation if param is not None else inspect.Parameter.empty
        if not isinstance(annotation, str):
            annotation = getattr(annotation, "__name__", "")
        kinds = {part.strip() for part in annotation.split("|")}
        if name == "seed" and isinstance(value, numbers.Integral) and not 0 <= value <= SEED_MAX:
            raise ParameterError(f"strategy {getattr(cls, 'name', cls.__name__)!r}: parameter seed must be between 0 "
                                 f"and {SEED_MAX} (numpy's and scikit-learn's range), got {value}")
        if "bool" in kinds and kinds <= {"bool", "None"}:
            if not (value is None and "None" in kinds or isinstance(value, bool | np.bool_)
                    or isinstance(value, numbers.Integral) and value in (0, 1)):
                raise ParameterError(f"strategy {getattr(cls, 'name', cls.__name__)!r}: parameter {name} must be "
                                     f"true or false{' or null' if 'None' in kinds else ''} (lower case), "
                                     f"got {value!r}")
            continue
        if not kinds & {"int", "float"} or not kinds <= {"int", "float", "bool", "None"}:
            continue
        if value is None and "None" in kinds or isinstance(value, bool) and "bool" in kinds:
            continue
        if not isinstance(value, bool) and isinstance(value, numbers.Integral if "float" not in kinds
                                                      else numbers.Real):
            continue
        expected = "a whole number" if "float" not in kinds else "a number"
        raise ParameterError(f"strategy {getattr(cls, 'name', cls.__name__)!r}: parameter {name} must be {expected}"
                             f"{' or null' if 'None' in kinds else ''}, got {value!r}")


class Strategy(ClassifierMixin, BaseEstimator):
    name: ClassVar[str] = ""
    modality: ClassVar[str] = "image"
    summary: ClassVar[str] = ""
    multi_backbone: ClassVar[bool] = False  # ``backbone`` names a pool of backbones (``a+b``, ``all``), not one

    # --- parameters ----------------------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        """The ``__init__`` keywords in signature order (scikit-learn's own list is sorted; this order is the one
        ``transferlab strategies`` shows and saved models record)."""
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    @classmethod
    def check_param_names(cls, names: Iterable[str]) -> None:
        """Raise :class:`~transferlab.errors.ParameterError` (a ``UserError`` for the CLI, a ``ValueError`` for
        scikit-learn) naming every parameter in ``names`` this strategy does not take, and the ones it does."""
        valid = set(cls._param_names())
        unknown = sorted(set(names) - valid)
        if unknown:
            raise ParameterError(f"strategy {cls.name!r} has no parameter(s) {', '.join(unknown)}; "
                                 f"it takes: {', '.join(sorted(valid))}")

    @classmethod
    def check_param_values(cls, params: dict[str, Any]) -> None:
        """:func:`check_param_values` of this strategy (where strategies are made by name, not in ``set_params``,
        where scikit-learn passes values of its own)."""
        check_param_values(cls, params)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """scikit-learn's ``get_params``, keyed in signature order."""
        params = super().get_params(deep=deep)
        ordered = {name: params[name] for name in self._param_names()}
        ordered.update(params)  # nested ``a__b`` entries (none today) after the own ones
        return ordered

    def set_params(self, **params: Any) -> Strategy:
        """scikit-learn's ``set_params``; an unknown name raises :class:`~transferlab.errors.ParameterError` (a
        ``ValueError``, as scikit-learn promises, with the message the CLI shows) before anything is changed."""
        self.check_param_names(key.partition("__")[0] for key in params)  # ``a__b``: a nested parameter of a
        return super().set_params(**params)

    def clone(self) -> Strategy:
        """An unfitted copy with the same parameters: ``sklearn.base.clone``, kept as a method because the tests
        (test_strategies, test_finetune, test_text, test_text_models) call ``strategy.clone()``."""
        from sklearn.base import clone

        return clone(self)

    def __sklearn_tags__(self) -> Any:  # noqa: ANN401 - sklearn.utils.Tags
        """A classifier (from ``ClassifierMixin``) whose ``X`` is a 1-d sequence of strings (file paths or
        texts), not a 2-d numeric array, so scikit-learn does not feed it one."""
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

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
        """The most probable class name of each item."""
        self.check_is_fitted()
        proba = self.predict_proba(X)
        return np.asarray(self.classes_)[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any = None) -> float:  # noqa: N803
        """Accuracy against ``y``, or against the dataset's own labels."""
        self.check_is_fitted()
        X, y = self._as_dataset(X, y)  # noqa: N806
        truth = X.labels if y is None else y
        if truth is None:
            raise UserError("score needs labels: a labelled dataset, or y")
        return float((self.predict(X) == np.asarray(truth)).mean())

    # --- saving ----------------------------------------------------------------------------------------------------
    def save_weights(self, directory: Path) -> dict[str, Any]:
        """Write learned weights into ``directory``; return what the loader needs to know (JSON-able)."""
        raise NotImplementedError

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted means ``fit`` has run: every strategy sets ``classes_`` last."""
        return hasattr(self, "classes_")

    def check_is_fitted(self) -> None:
        """Raise scikit-learn's ``NotFittedError`` (what its tools and users expect) unless ``fit`` has run."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)

    # --- data ------------------------------------------------------------------------------------------------------
    def _as_dataset(self, X: Any, y: Any = None) -> tuple[Any, Any]:  # noqa: N803
        """``(X, y)`` with ``X`` a dataset. A dataset (or ``None``) passes through untouched, so runs on datasets
        are exactly what they were. A plain sequence (list, tuple, NumPy array; one string is one item) becomes an
        :class:`ImageDataset` of file paths or a :class:`TextDataset` of texts, by the strategy's ``modality``;
        its labels are ``y`` as strings, its classes their sorted unique values, and ``y`` comes back as None."""
        if X is None or (hasattr(X, "labels") and hasattr(X, "classes")):
            return X, y
        items = [X] if isinstance(X, (str, os.PathLike)) else list(X)
        labels = None if y is None else [str(v) for v in y]
        if labels is not None and len(labels) != len(items):
            raise DataError(f"X has {len(items)} items but y has {len(labels)} labels")
        if self.modality == "text":
            from transferlab.data.texts import TextDataset

            return TextDataset.from_texts(items, labels), None
        from transferlab.data.images import ImageDataset

        return ImageDataset(paths=[str(p) for p in items], labels=labels, source="paths"), None

    @staticmethod
    def labels_of(X: Any, y: Any) -> tuple[np.ndarray, list[str]]:  # noqa: N803
        """Integer labels and class names from ``y`` or the dataset's own labels."""
        classes = list(X.classes)
        labels = X.labels if y is None else list(y)
        if labels is None:
            raise UserError("fit needs labels: a labelled dataset, or y with a plain list")
        if len(labels) and not isinstance(labels[0], str) and np.issubdtype(np.asarray(labels).dtype, np.integer):
            return np.asarray(labels, np.int64), classes
        index = {c: i for i, c in enumerate(classes)}
        return np.asarray([index[str(v)] for v in labels], np.int64), classes
