"""The compare report: one self-contained HTML page (pictures embedded) that a person can open anywhere.

It shows the leaderboard, accuracy against training time, learning curves per epoch (fine-tuning against frozen
features), the winner's confusion matrix and its most confident mistakes (pictures for images, a table for texts), a
2-D map of the data's features coloured by class, the advice with its reason, and any negative-transfer warning.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transferlab import runtime
from transferlab.backbones import DEFAULT_BACKBONE
from transferlab.workflows.leaderboard import fmt

if TYPE_CHECKING:  # pragma: no cover
    from transferlab.workflows.leaderboard import CompareResult


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plot_accuracy_vs_time(rows: list[dict[str, Any]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        ax.errorbar(max(r["train_seconds"], 1e-3), r["accuracy_mean"], yerr=r["accuracy_std"], fmt="o", capsize=3)
        ax.annotate(f"{r['label']} / {r['backbone']}", (max(r["train_seconds"], 1e-3), r["accuracy_mean"]),
                    fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("training time per run (s, log scale)")
    ax.set_ylabel("accuracy on the evaluation split")
    ax.set_title("accuracy against training time")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_learning_curves(result: CompareResult) -> str | None:
    plt = _plt()
    curves = {name: runs[0].get("curve") for name, runs in result.runs.items() if runs and runs[0].get("curve")}
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, curve in curves.items():
        label = name.replace("|", " / ")
        epochs = [r["epoch"] for r in curve]
        axes[0].plot(epochs, [r["train_loss"] for r in curve], label=label)
        if all("val_accuracy" in r for r in curve):
            axes[1].plot(epochs, [r["val_accuracy"] for r in curve], label=label)
    axes[0].set_title("training loss per epoch")
    axes[1].set_title("validation accuracy per epoch (held-out part of train)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return _png(fig)


def _b64_of(draw) -> str | None:  # noqa: ANN001 - draw(file) writes a PNG, returns False when there is nothing
    buf = io.BytesIO()
    if draw(buf) is False:
        return None
    return base64.b64encode(buf.getvalue()).decode()


def plot_confusion(matrix: list[list[int]], classes: list[str]) -> str | None:
    from transferlab.evaluation import plot_confusion_matrix

    return _b64_of(lambda f: plot_confusion_matrix(matrix, classes, f))


def plot_mistakes(mistakes: list[dict[str, Any]]) -> str | None:
    from transferlab.evaluation import plot_mistakes as draw_mistakes

    return _b64_of(lambda f: draw_mistakes(mistakes, f, columns=min(4, max(1, len(mistakes)))))


def feature_map(train: Any, ev: Any, task: str, limit: int = 2000
                ) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """2-D t-SNE coordinates of the frozen features (the modality's default backbone) of (a sample of) train + eval,
    their labels, the classes and a title; the map is cached by the backbone and the items."""
    from transferlab.backbones import DEFAULT_TEXT_ENCODER
    from transferlab.data.labelled import concat
    from transferlab.features import extract_features
    from transferlab.features.ranking import sample

    both = sample(concat(train, ev), limit, 0)
    backbone = DEFAULT_BACKBONE if task == "image" else DEFAULT_TEXT_ENCODER
    items = list(both.paths) if task == "image" else list(both.texts)
    coords = tsne_coords([task, backbone, *items],
                         lambda: extract_features(backbone, items, outputs=("features",)).arrays["features"])
    return coords, both.y, list(train.classes), f"t-SNE of {backbone} features, coloured by class"


def tsne_coords(key_parts: list[str], features: Callable[[], np.ndarray]) -> np.ndarray:
    """2-D t-SNE (after PCA to 50 dimensions) of ``features()``, cached under a digest of ``key_parts`` (what
    identifies the features: the encoder and the items), so a second report does not recompute it."""
    import hashlib

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    key = hashlib.sha1(("tsne|" + "|".join(key_parts)).encode()).hexdigest()
    stored = runtime.cache_dir() / "compare" / f"tsne-{key}.npy"
    if stored.exists():
        return np.load(stored)
    x = features()
    x = PCA(n_components=min(50, x.shape[0] - 1, x.shape[1]), random_state=0).fit_transform(x)
    coords = TSNE(n_components=2, perplexity=min(30, max(5, len(x) // 4)), random_state=0,
                  init="pca").fit_transform(x)
    np.save(stored, coords)
    return coords


def plot_feature_map(coords: np.ndarray, labels: np.ndarray, classes: list[str],
                     title: str = f"t-SNE of {DEFAULT_BACKBONE} features, coloured by class") -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, name in enumerate(classes):
        sel = labels == k
        ax.scatter(coords[sel, 0], coords[sel, 1], s=10, color=cmap(k % cmap.N), label=name, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    return _png(fig)


def _img(b64: str | None, alt: str) -> str:
    if not b64:
        return f"<p class='muted'>({html.escape(alt)}: nothing to show)</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def mistakes_table(mistakes: list[dict[str, Any]]) -> str:
    """Text mistakes as an HTML table (the text, its label, the prediction and the model's confidence)."""
    if not mistakes:
        return "<p class='muted'>(no mistakes on the evaluation split)</p>"
    rows = "".join(f"<tr><td>{html.escape(m['path'])}</td><td>{html.escape(m['true'])}</td>"
                   f"<td>{html.escape(m['predicted'])}</td><td>{m['confidence']:.2f}</td></tr>" for m in mistakes)
    return ("<table id='mistakes'><thead><tr><th>text</th><th>label</th><th>predicted</th><th>confidence</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def write_report(path: Path, result: CompareResult,
                 map_data: tuple[np.ndarray, np.ndarray, list[str], str]) -> None:
    """The page for a compare run; ``map_data``: 2-D coordinates, labels, classes and title of the feature map
    (:func:`feature_map`). Mistakes are pictures for images, a table for texts."""
    rows = result.rows
    best = rows[0]
    winner_runs = result.runs[best["key"]]
    table = ["<table id='leaderboard'><thead><tr><th>#</th><th>strategy</th><th>backbone</th><th>accuracy</th>"
             "<th>macro-F1</th><th>ROC AUC</th><th>train s</th><th>latency ms (p50)</th><th>size MB</th></tr>"
             "</thead><tbody>"]
    for i, r in enumerate(rows, 1):
        cls = " class='best'" if i == 1 else ""
        table.append(
            f"<tr{cls}><td>{i}</td><td>{html.escape(r['label'])}</td><td>{html.escape(r['backbone'])}</td>"
            f"<td>{r['accuracy_mean']:.3f} &plusmn; {r['accuracy_std']:.3f}</td><td>{fmt(r['macro_f1'])}</td>"
            f"<td>{fmt(r['roc_auc'])}</td><td>{fmt(r['train_seconds'], 1)}</td>"
            f"<td>{fmt(r['latency_ms_p50'], 1)}</td><td>{fmt(r['size_mb'], 1)}</td></tr>")
    table.append("</tbody></table>")
    coords, labels, classes, map_title = map_data
    mistakes = winner_runs[0]["mistakes"]
    mistakes_html = (_img(plot_mistakes(mistakes), "most confident mistakes") if result.task == "image"
                     else mistakes_table(mistakes))
    advice = result.advice or {}
    warning = (f"<p class='warn'>&#9888; {html.escape(result.warning)}</p>" if result.warning else "")
    data_lines = "<br>".join(html.escape(x) for x in result.report.summary_lines(max_skipped=10))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>transferlab compare: {html.escape(result.report.source)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
th {{ background: #f0f3f7; }} tr.best td {{ background: #e8f6e8; font-weight: 600; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }} .muted {{ color: #888; }}
.warn {{ background: #fff4e0; border-left: 4px solid #f0a020; padding: 0.6em; }}
.advice {{ background: #eef4ff; border-left: 4px solid #4070d0; padding: 0.6em; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }}
</style></head><body>
<h1>Strategy comparison</h1>
<p>Data: <code>{html.escape(result.report.source)}</code>. Protocol: {html.escape(result.protocol)}.
{len(rows)} candidates, finished in {result.seconds:.1f} s ({result.cached_runs} runs reused from the cache).</p>
<p class="advice"><b>Winner:</b> {html.escape(best['label'])} on {html.escape(best['backbone'])},
accuracy {best['accuracy_mean']:.3f} &plusmn; {best['accuracy_std']:.3f}; saved in <code>best/</code>.<br>
<b>Advice:</b> {html.escape(advice.get('reason', ''))}</p>
{warning}
<h2>Leaderboard</h2>
{''.join(table)}
<h2>Accuracy against training time</h2>
{_img(plot_accuracy_vs_time(rows), 'accuracy against training time')}
<h2>Learning curves: frozen features against fine-tuning</h2>
{_img(plot_learning_curves(result), 'learning curves')}
<div class="grid"><div><h2>Winner's confusion matrix</h2>
{_img(plot_confusion(winner_runs[0]['confusion_matrix'], winner_runs[0]['classes']), 'confusion matrix')}</div>
<div><h2>Winner's most confident mistakes</h2>
{mistakes_html}</div></div>
<h2>The data, as the pretrained network sees it</h2>
{_img(plot_feature_map(coords, labels, classes, map_title), 'feature map')}
<h2>Data report</h2><p>{data_lines}</p>
</body></html>"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page)
    tmp.replace(path)
