"""audit: which labels of a labelled set are probably wrong, which items are near-duplicates and which are outliers,
so a person can clean the data before training on it.

The whole labelled data is audited, train and evaluation splits together (the user wants all of it clean). Frozen
features of every item come from the feature cache (the default backbone of the modality, or ``backbone``); the
analysis itself is :mod:`transferlab.analysis.audit` (out-of-fold probabilities by stratified k-fold logistic
regression, then cleanlab's confident learning and Datalab). This module reads the data, calls it, and writes the
results a person reviews: ``label_issues.csv`` (every item, most suspect first), ``near_duplicates.csv``,
``outliers.csv``, ``contact_sheet.html`` (and ``contact_sheet.png`` for images), ``audit.json`` and
``data_report.json``.
"""

from __future__ import annotations

import csv
import html
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.analysis.audit import DEFAULT_FOLDS, find_data_issues, out_of_fold_probabilities, rank_label_issues
from transferlab.backbones import DEFAULT_BACKBONE, DEFAULT_TEXT_ENCODER, get_backbone
from transferlab.data.images import thumbnail, thumbnail_data_uri
from transferlab.data.labelled import Columns, detect_task
from transferlab.errors import DataError, UserError
from transferlab.features import extract_features
from transferlab.progress import log
from transferlab.workflows.common import check_out_folder, check_out_outside_images, prepare

DEFAULT_TOP = 30  # suspects shown in the contact sheet and in --json


def audit(data: str | os.PathLike[str], out: str | os.PathLike[str], backbone: str | os.PathLike[str] | None = None,
          task: str | None = None, folds: int = DEFAULT_FOLDS, C: float | None = None, seed: int = 0,  # noqa: N803
          top: int = DEFAULT_TOP, eval_split: str | None = None, text_column: str = "text",
          label_column: str = "label") -> dict[str, Any]:
    """Audit the labels of DATA (images or texts, read as ``train`` reads them) and write the results into ``out``.

    Returns the summary saved as ``audit.json`` plus ``suspects``: the first ``top`` flagged items (path, text for
    text data, given and suggested label, score). ``score`` is cleanlab's label quality: the out-of-fold
    probability of the given label (0 = surely wrong, 1 = surely right)."""
    t_start = time.perf_counter()
    check_out_folder(out)
    columns = Columns(text_column, label_column)
    task = detect_task(data, task, text_column)
    check_out_outside_images(out, data, task)
    name = str(backbone) if backbone is not None else (DEFAULT_BACKBONE if task == "image" else DEFAULT_TEXT_ENCODER)
    choose_encoder = task == "text" and backbone is None  # the strongest encoder the data can afford (below)
    spec = get_backbone(name)
    if spec.modality != task:
        raise UserError(f"--backbone {name}: {'an' if spec.modality == 'image' else 'a'} {spec.modality} backbone, "
                        f"but the data is {task}")
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    # the split only matters to `train`; half-and-half keeps two-example classes readable (every class in train)
    prepared = prepare(data, task, 0.5, seed, eval_split, columns, backbone=name if task == "image" else
                       DEFAULT_BACKBONE)
    everything = prepared.everything()
    splits = ["train"] * len(prepared.train) + ["eval"] * len(prepared.eval) if prepared.fixed else None
    for item in prepared.report.skipped[:20]:
        log(f"skipped {item['path']}: {item['reason']}")
    _check_counts(everything.labels or [], str(data))

    items = list(everything.texts) if task == "text" else list(everything.paths)
    if choose_encoder:  # out-of-fold probabilities are only as good as the features: the strongest affordable one
        from transferlab.features.ranking import strongest_affordable_encoder

        name, why = strongest_affordable_encoder(items)
        spec = get_backbone(name)
        log(f"features: {why}")
    t = time.perf_counter()
    extracted = extract_features(name, items, outputs=("features",), desc=f"features ({spec.name})")
    feature_seconds = time.perf_counter() - t
    ok = np.asarray(extracted.ok, np.int64)
    features = np.asarray(extracted.arrays["features"], np.float64)
    for i, reason in extracted.failures.items():
        prepared.report.skip(everything.paths[i], reason, "audit")
    if len(ok) < len(everything):  # the decode check in prepare() makes this rare; keep the rows that have features
        everything = everything.subset(ok.tolist())
        splits = None if splits is None else [splits[i] for i in ok]
        _check_counts(everything.labels or [], str(data))

    present = sorted(set(everything.labels or []), key=list(everything.classes).index)
    index = {c: i for i, c in enumerate(present)}
    y = np.asarray([index[label] for label in everything.labels or []], np.int64)

    t = time.perf_counter()
    log(f"cross-validating a logistic regression on {features.shape[0]} x {features.shape[1]} features "
        f"({min(folds, int(np.bincount(y).min()))} folds)")
    oof = out_of_fold_probabilities(features, y, folds=folds, C=C, seed=seed)
    ranking = rank_label_issues(y, oof.proba)
    log("looking for near-duplicates and outliers")
    issues = find_data_issues(features, y)
    audit_seconds = time.perf_counter() - t

    rows = _label_rows(everything, task, present, y, oof.proba, ranking, splits)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"label_issues": _write_csv(out_dir / "label_issues.csv", rows)}
    groups = issues.duplicate_groups()
    files["near_duplicates"] = _write_csv(out_dir / "near_duplicates.csv",
                                          _duplicate_rows(everything, task, present, y, issues, groups),
                                          ["group", "path", *(["text"] if task == "text" else []), "given_label",
                                           "labels_agree", "duplicate_of", "near_duplicate_score"])
    outlier_rows = _outlier_rows(everything, task, present, y, issues)
    files["outliers"] = _write_csv(out_dir / "outliers.csv", outlier_rows,
                                   ["rank", "path", *(["text"] if task == "text" else []), "given_label",
                                    "outlier_score"])
    suspects = [r for r in rows if r["is_label_issue"]]
    summary: dict[str, Any] = {
        "source": str(data),
        "task": task,
        "backbone": spec.name if task == "image" else name,
        "items": len(rows),
        "classes": present,
        "folds": oof.folds,
        "C": oof.C,
        "cross_validated_accuracy": float((oof.proba.argmax(axis=1) == y).mean()),
        "label_issues": len(suspects),
        "per_class": _per_class(rows, present),
        "near_duplicates": int(issues.is_near_duplicate.sum()),
        "near_duplicate_groups": len(groups),
        "near_duplicate_groups_with_different_labels": sum(len({int(y[i]) for i in g}) > 1 for g in groups),
        "outliers": int(issues.is_outlier.sum()),
        "skipped": len(prepared.report.skipped),
        "seconds": {"features": round(feature_seconds, 2), "audit": round(audit_seconds, 2),
                    "total": round(time.perf_counter() - t_start, 2)},
    }
    shown = suspects[:top]
    if task == "image" and shown:
        files["contact_sheet_png"] = _contact_png(out_dir / "contact_sheet.png", shown)
    files["contact_sheet"] = _contact_html(out_dir / "contact_sheet.html", summary, shown, outlier_rows[:12], task)
    prepared.report.save(out_dir / "data_report.json")
    files["data_report"] = str(out_dir / "data_report.json")
    files["summary"] = str(out_dir / "audit.json")
    summary["files"] = files
    (out_dir / "audit.json").write_text(json.dumps(summary, indent=2))
    return {**summary, "suspects": shown}


def _check_counts(labels: list[str], where: str) -> None:
    """Cross-validation predicts every item from a model that never saw it: each class needs two items at least."""
    counts = Counter(labels)
    if len(counts) < 2:
        found = f"only {next(iter(counts))!r}" if counts else "none"
        raise DataError(f"{where}: the audit needs at least two classes, found {found}")
    single = sorted(c for c, n in counts.items() if n < 2)
    if single:
        raise DataError(f"{where}: class(es) with a single example: {', '.join(single)}; every class needs at least "
                        "two to be cross-validated (add examples or remove the class)")


def _where(ds: Any, task: str, i: int) -> str:
    """How a person finds item ``i``: the image path, or ``file:line`` of a text row."""
    if task == "image":
        return ds.paths[i]
    sources = getattr(ds, "sources", None)
    return sources[i] if sources else f"row {i + 1}"


def _label_rows(ds: Any, task: str, classes: list[str], y: np.ndarray, proba: np.ndarray, ranking: Any,
                splits: list[str] | None) -> list[dict[str, Any]]:
    rows = []
    for rank, i in enumerate(ranking.order, start=1):
        s = int(ranking.suggested[i])
        row: dict[str, Any] = {"rank": rank, "path": _where(ds, task, int(i))}
        if task == "text":
            row["text"] = ds.texts[i]
        row.update({"given_label": classes[int(y[i])], "suggested_label": classes[s],
                    "score": round(float(ranking.quality[i]), 6), "is_label_issue": bool(ranking.is_issue[i]),
                    "given_label_probability": round(float(proba[i, y[i]]), 6),
                    "suggested_label_probability": round(float(proba[i, s]), 6)})
        if splits is not None:
            row["split"] = splits[i]
        rows.append(row)
    return rows


def _duplicate_rows(ds: Any, task: str, classes: list[str], y: np.ndarray, issues: Any,
                    groups: list[list[int]]) -> list[dict[str, Any]]:
    rows = []
    for g, members in enumerate(groups, start=1):
        agree = len({int(y[i]) for i in members}) == 1
        for i in members:
            row: dict[str, Any] = {"group": g, "path": _where(ds, task, i)}
            if task == "text":
                row["text"] = ds.texts[i]
            row.update({"given_label": classes[int(y[i])], "labels_agree": agree,
                        "duplicate_of": " | ".join(_where(ds, task, j) for j in members if j != i),
                        "near_duplicate_score": round(float(issues.near_duplicate_score[i]), 6)})
            rows.append(row)
    return rows


def _outlier_rows(ds: Any, task: str, classes: list[str], y: np.ndarray, issues: Any) -> list[dict[str, Any]]:
    flagged = np.flatnonzero(issues.is_outlier)
    rows = []
    for rank, i in enumerate(flagged[np.argsort(issues.outlier_score[flagged], kind="stable")], start=1):
        row: dict[str, Any] = {"rank": rank, "path": _where(ds, task, int(i))}
        if task == "text":
            row["text"] = ds.texts[i]
        row.update({"given_label": classes[int(y[i])], "outlier_score": round(float(issues.outlier_score[i]), 6)})
        rows.append(row)
    return rows


def _per_class(rows: list[dict[str, Any]], classes: list[str]) -> dict[str, dict[str, Any]]:
    """Per given class: items, flagged suspects, and which labels the suspects were suggested instead."""
    out: dict[str, dict[str, Any]] = {c: {"items": 0, "label_issues": 0, "suggested": {}} for c in classes}
    for r in rows:
        entry = out[r["given_label"]]
        entry["items"] += 1
        if r["is_label_issue"]:
            entry["label_issues"] += 1
            entry["suggested"][r["suggested_label"]] = entry["suggested"].get(r["suggested_label"], 0) + 1
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> str:
    fields = list(rows[0]) if rows else (header or [])
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _contact_png(path: Path, suspects: list[dict[str, Any]], columns: int = 6) -> str:
    """The suspects as a grid of thumbnails titled with their given and suggested labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = (len(suspects) + columns - 1) // columns
    fig, axes = plt.subplots(n_rows, columns, figsize=(2.4 * columns, 2.8 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, suspects, strict=False):
        img = thumbnail(r["path"])
        if img is not None:
            ax.imshow(img)
        ax.set_title(f"#{r['rank']} given {r['given_label']}\nsuggested {r['suggested_label']} ({r['score']:.2f})",
                     fontsize=8)
    fig.suptitle("label audit: most suspect labels first (score = probability of the given label)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def _img_tag(path: str) -> str:
    uri = thumbnail_data_uri(path)
    return f"<img src='{uri}' alt=''>" if uri else "<div class='missing'>cannot read</div>"


_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{width:170px;border:1px solid #ccc;padding:5px;font-size:12px}
.card img{display:block;margin:0 auto 4px}.path{color:#777;word-break:break-all;font-size:11px}
.given{color:#b00}.suggested{color:#070}td.text{max-width:60em}"""


def _contact_html(path: Path, summary: dict[str, Any], suspects: list[dict[str, Any]],
                  outliers: list[dict[str, Any]], task: str) -> str:
    """One self-contained page: the summary, the suspects (thumbnails or a table of texts), the first outliers."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>label audit</title><style>{_STYLE}</style>"
             f"</head><body><h1>Label audit of {e(summary['source'])}</h1>",
             f"<p>{summary['items']} items, {summary['label_issues']} suspect labels, "
             f"{summary['near_duplicate_groups']} near-duplicate groups "
             f"({summary['near_duplicate_groups_with_different_labels']} with different labels), "
             f"{summary['outliers']} outliers. Features: {e(str(summary['backbone']))}; out-of-fold probabilities from "
             f"{summary['folds']}-fold logistic regression (C={summary['C']:g}, cross-validated accuracy "
             f"{summary['cross_validated_accuracy']:.3f}). The score is the out-of-fold probability of the given "
             "label: low means the label is probably wrong. Every item is ranked in label_issues.csv.</p>",
             "<table><tr><th>class</th><th>items</th><th>suspects</th><th>suggested instead</th></tr>"]
    for c, v in summary["per_class"].items():
        instead = ", ".join(f"{e(k)}: {n}" for k, n in sorted(v["suggested"].items(), key=lambda kv: -kv[1]))
        parts.append(f"<tr><td>{e(c)}</td><td>{v['items']}</td><td>{v['label_issues']}</td><td>{instead}</td></tr>")
    parts.append("</table>")
    parts.append(f"<h2>Most suspect labels ({len(suspects)} of {summary['label_issues']})</h2>")
    if not suspects:
        parts.append("<p>No label issues found.</p>")
    elif task == "image":
        parts.append("<div class='grid'>")
        for r in suspects:
            parts.append(f"<div class='card'>{_img_tag(r['path'])}<b>#{r['rank']}</b> "
                         f"given <span class='given'>{e(r['given_label'])}</span><br>suggested "
                         f"<span class='suggested'>{e(r['suggested_label'])}</span> (score {r['score']:.3f})"
                         f"<div class='path'>{e(r['path'])}</div></div>")
        parts.append("</div>")
    else:
        parts.append("<table><tr><th>#</th><th>text</th><th>given</th><th>suggested</th><th>score</th>"
                     "<th>where</th></tr>")
        for r in suspects:
            parts.append(f"<tr><td>{r['rank']}</td><td class='text'>{e(r['text'])}</td>"
                         f"<td class='given'>{e(r['given_label'])}</td><td class='suggested'>"
                         f"{e(r['suggested_label'])}</td><td>{r['score']:.3f}</td><td class='path'>{e(r['path'])}"
                         "</td></tr>")
        parts.append("</table>")
    if outliers:
        parts.append(f"<h2>Most atypical items ({len(outliers)} of {summary['outliers']}; outliers.csv)</h2>")
        if task == "image":
            parts.append("<div class='grid'>")
            for r in outliers:
                parts.append(f"<div class='card'>{_img_tag(r['path'])}{e(r['given_label'])} "
                             f"(score {r['outlier_score']:.3f})<div class='path'>{e(r['path'])}</div></div>")
            parts.append("</div>")
        else:
            parts.append("<table><tr><th>text</th><th>label</th><th>score</th></tr>")
            for r in outliers:
                parts.append(f"<tr><td class='text'>{e(r['text'])}</td><td>{e(r['given_label'])}</td>"
                             f"<td>{r['outlier_score']:.3f}</td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return str(path)
