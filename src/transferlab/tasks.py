"""What is predicted, described once; the training loop, the metrics and the saved model take it from there.

A :class:`Task` is data: its ``kind`` (single-label ``classification`` today), the ``target`` it reads (the label
column, or the class folders) and what is known about the answers (``classes``). Everything kind-specific is one row
of :data:`KINDS` (the evaluation metrics, what a saved model outputs, the metric that ranks models) plus one row of
:data:`transferlab.training.OBJECTIVES` (the training loop's loss and metrics). Several label columns (multi-task
heads), answer spans (question answering) and embeddings (similarity search) are further rows, not second copies of
the pipeline. This module imports no training code, so saved-model loaders can read a task.

The modality (image or text) is not part of the task: it is a property of the data and the backbone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.errors import UserError


def _classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from transferlab.evaluation import classification_metrics

    return classification_metrics(y_true, proba, classes)


@dataclass(frozen=True)
class TaskKind:
    """What one kind of target needs: its metrics and what the model outputs."""

    metrics: Callable[[np.ndarray, np.ndarray, list[str]], dict[str, Any]]
    outputs: str  # what predict_proba / a saved model returns per input
    headline: str  # the metric that ranks models of this kind


KINDS: dict[str, TaskKind] = {
    "classification": TaskKind(_classification_metrics, "class probabilities", "accuracy"),
}


@dataclass(frozen=True)
class Task:
    kind: str = "classification"
    target: str = "label"
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown task kind {self.kind!r}; this transferlab knows: {', '.join(KINDS)}")

    @property
    def spec(self) -> TaskKind:
        return KINDS[self.kind]

    def metrics(self, y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
        """The evaluation metrics of this kind (classification: accuracy, macro-F1, ROC AUC, confusion matrix...)."""
        return self.spec.metrics(y_true, proba, list(self.classes))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "classes": list(self.classes),
                "outputs": self.spec.outputs}

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None, classes: Sequence[str] = ()) -> Task:
        """From a saved model's config; models saved before tasks were recorded are single-label classifiers."""
        doc = doc or {}
        return cls(str(doc.get("kind", "classification")), str(doc.get("target", "label")),
                   tuple(doc.get("classes") or classes))
