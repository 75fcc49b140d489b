"""Metrics, the confusion matrix as a picture, and the most confidently wrong examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """accuracy, balanced accuracy, macro-F1, ROC AUC (binary, or one-vs-rest macro), per-class report, confusion."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = np.asarray(y_true, np.int64)
    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        "count": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # scikit-learn's balanced accuracy (the mean recall of the classes present) without its warning on a set of
        # one class: evaluating on one class folder is a fair question
        "balanced_accuracy": float(np.mean(rec[support > 0])) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    present = np.unique(y_true)
    try:
        if len(classes) == 2 and len(present) == 2:
            out["roc_auc"] = float(roc_auc_score(y_true, proba[:, 1]))
        elif len(present) == len(classes) and len(classes) > 2:
            p = proba / proba.sum(axis=1, keepdims=True)
            out["roc_auc"] = float(roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=labels))
        else:
            out["roc_auc"] = None
    except ValueError:
        out["roc_auc"] = None
    out["per_class"] = {
        c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def confident_mistakes(paths: list[str], y_true: np.ndarray, proba: np.ndarray, classes: list[str],
                       limit: int = 12) -> list[dict[str, Any]]:
    y_pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    order = wrong[np.argsort(-proba[wrong, y_pred[wrong]])][:limit]
    return [{"path": paths[i], "true": classes[int(y_true[i])], "predicted": classes[int(y_pred[i])],
             "confidence": float(proba[i, y_pred[i]])} for i in order]


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: list[list[int]], classes: list[str], path: str | Path, title: str = "") -> None:
    plt = _pyplot()
    m = np.asarray(matrix)
    n = len(classes)
    size = max(4.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (rows: true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_mistakes(mistakes: list[dict[str, Any]], path: str | Path, columns: int = 4) -> bool:
    """A contact sheet of the most confidently wrong images; False when there is nothing to show."""
    if not mistakes:
        return False
    from transferlab.data.images import load_image
    from transferlab.errors import ImageDecodeError

    plt = _pyplot()
    rows = (len(mistakes) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, mistakes, strict=False):
        try:
            img = load_image(m["path"], draft_size=200)
            img.thumbnail((200, 200))
            ax.imshow(img)
        except (ImageDecodeError, OSError):
            pass
        ax.set_title(f"true {m['true']}\npredicted {m['predicted']} ({m['confidence']:.2f})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_evaluation(directory: Path, metrics: dict[str, Any], mistakes: list[dict[str, Any]],
                     classes: list[str], images: bool = True) -> None:
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (directory / "mistakes.json").write_text(json.dumps(mistakes, indent=2))
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(metrics["confusion_matrix"], classes, directory / "confusion_matrix.png")
    if images:
        plot_mistakes(mistakes[:8], directory / "mistakes.png")
