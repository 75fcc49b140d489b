"""``train`` and ``evaluate``: one version each for every modality.

``train``: DATA -> :class:`~transferlab.data.labelled.LabelledData` -> strategy.fit -> evaluation -> saved model.
``evaluate``: saved model + labelled DATA -> metrics.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.backbones import DEFAULT_BACKBONE
from transferlab.data.labelled import Columns, LabelledData, load_eval_set, model_inputs
from transferlab.data.report import DataReport
from transferlab.errors import DataError, UserError
from transferlab.evaluation import confident_mistakes, write_evaluation
from transferlab.model import Model, check_save_target
from transferlab.progress import log
from transferlab.strategies import Strategy
from transferlab.workflows.common import (
    backbone_label,
    build_strategy,
    check_out_folder,
    check_out_outside_images,
    first_backbone,
    fit_and_score,
    prepare,
    report_lines,
    saved_preprocessing,
    target_of,
)


@dataclass
class TrainResult:
    model: Model
    metrics: dict[str, Any]
    report: DataReport
    out: Path | None


def checkpoint_dir_for(out: str | os.PathLike[str]) -> Path:
    """Where a run saving to ``out`` keeps its per-epoch checkpoints: a hidden sibling of ``out`` (the model
    folder itself is replaced atomically at the end), removed once the model is saved."""
    target = Path(out).resolve()
    return target.parent / f".{target.name}.checkpoint"


def _attach_checkpoints(strategy: Strategy, out: str | os.PathLike[str] | None, resume: bool) -> Path | None:
    takes_checkpoints = "checkpoint_dir" in strategy.get_params()
    if resume and not takes_checkpoints:
        raise UserError(f"--resume: strategy {strategy.name!r} trains no network and has no checkpoints")
    if not takes_checkpoints:
        return None
    if strategy.checkpoint_dir is None:
        if out is None:
            if resume:
                raise UserError("--resume needs --out (checkpoints are kept next to the model folder)")
            return None
        strategy.set_params(checkpoint_dir=str(checkpoint_dir_for(out)))
    strategy.set_params(resume=bool(resume or strategy.resume))
    return Path(strategy.checkpoint_dir)


def train(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, strategy: str | None = None,
          backbone: str | None = None, params: dict[str, Any] | None = None, seed: int = 0,
          val_fraction: float = 0.2, eval_split: str | None = None, resume: bool = False, task: str | None = None,
          text_column: str = "text", label_column: str = "label",
          feature_columns: str | list[str] | None = None) -> TrainResult:
    """Train one strategy on DATA (images or text: ``task`` or detected), evaluate it on the evaluation split and
    save it to ``out``. ``strategy="auto"`` measures the data first and says why it chose what it chose; with no
    ``strategy``, the same measurement restricted to what takes seconds (frozen features; ``auto_select(fast=True)``).

    Strategies that train a network checkpoint every epoch into :func:`checkpoint_dir_for` ``(out)``; with
    ``resume=True`` a killed run continues from its last complete epoch (same seed, same final numbers)."""
    from transferlab.data.labelled import detect_task

    t_start = time.perf_counter()
    if out is not None:  # a file or a folder of other things at --out: said now, not after the training
        check_save_target(Path(out))
    columns = Columns(text_column, label_column, feature_columns)
    task = detect_task(data, task, text_column)
    check_out_outside_images(out, data, task)
    params = dict(params or {})
    prepared: LabelledData | None = None
    auto = None
    if strategy is None and (backbone is not None or params):  # a backbone or parameters name what to train
        strategy = "headless"
    if strategy in (None, "auto"):  # measure the data first, then choose
        from transferlab.workflows.auto import auto_select

        prepared = prepare(data, task, val_fraction, seed, eval_split, columns, DEFAULT_BACKBONE)
        auto_requested = strategy == "auto"
        choice = auto_select(prepared.train, task, seed=seed, fast=not auto_requested)
        strategy, backbone = choice.strategy, (choice.backbone if task == "image" else backbone)
        params = {**choice.params, **params}
        auto = choice.to_metrics()
        how = "auto" if auto_requested else "strategy (fast auto; --strategy to choose)"
        log(f"{how}: {strategy}{' on ' + choice.backbone if task == 'image' else ''} {choice.params or ''}. "
            f"{choice.reason}")
    model_strategy = build_strategy(strategy, task, backbone, params, seed)
    if columns.side() and not getattr(model_strategy, "uses_side_features", False):
        raise UserError(f"--feature-columns: {model_strategy.name} has no classifier head on features to join "
                        "side columns to; use bow, text_hybrid, text_headless or text_fewshot")
    checkpoints = _attach_checkpoints(model_strategy, out, resume)
    if prepared is None:
        first = first_backbone(model_strategy) if task == "image" else DEFAULT_BACKBONE
        prepared = prepare(data, task, val_fraction, seed, eval_split, columns, first)
    report_lines(prepared.report)
    run = fit_and_score(model_strategy, prepared.train, prepared.eval, prepared)
    metrics = run["metrics"]
    metrics["total_seconds"] = time.perf_counter() - t_start
    metrics["split"] = "eval"
    if auto is not None:
        metrics["auto"] = auto
    extra = {"backbone": backbone_label(model_strategy), "data": str(data),
             "target": target_of(model_strategy, prepared).to_dict()}
    model, write_weights = Model.from_strategy(model_strategy, task, saved_preprocessing(model_strategy, prepared),
                                               extra)
    model.metrics = metrics
    saved = None
    if out is not None:
        report = prepared.report

        def extra_files(directory: Path) -> None:
            report.save(directory / "data_report.json")
            write_evaluation(directory, metrics, run["mistakes"], model.classes, images=task == "image")

        saved = model.save(out, write_weights, extra_files)
        if checkpoints is not None:
            shutil.rmtree(checkpoints, ignore_errors=True)
    else:
        model.predictor = None
    return TrainResult(model=model, metrics=metrics, report=prepared.report, out=saved)


def evaluate(model_dir: str | os.PathLike[str] | Model, data: str | os.PathLike[str],
             out: str | os.PathLike[str] | None = None, eval_split: str | None = None,
             text_column: str | None = None, label_column: str | None = None) -> dict[str, Any]:
    """Metrics of a saved model on labelled DATA: a folder's evaluation split, a folder of class folders, or a file
    (CSV of path,label for images; CSV/JSONL for text, with the columns the model was trained with unless given).
    Classes the model does not know are an error."""
    check_out_folder(out)
    model = model_dir if isinstance(model_dir, Model) else Model.load(model_dir)
    if model.task == "qa":
        raise UserError(f"{model_dir}: a question-answering reader; evaluate it with `transferlab qa evaluate`")
    pre = model.config.get("preprocessing", {})
    columns = Columns(text_column or pre.get("text_column", "text"), label_column or pre.get("label_column", "label"),
                      list(pre.get("feature_columns", [])) or None)
    report = DataReport(source=str(data))
    ds = load_eval_set(data, model.task, eval_split, columns, report)
    if len(ds) == 0:
        raise DataError(f"{data}: no usable {'files' if model.task == 'image' else 'rows'}")
    unknown = sorted(set(ds.labels or []) - set(model.classes))
    if unknown:
        raise DataError(f"{data}: classes the model does not know: {', '.join(unknown)}")
    ds.classes = list(model.classes)
    proba, ok, failures = model.predict_proba(model_inputs(ds, columns))
    if not ok:
        raise DataError(f"{data}: none of the {len(ds)} items could be used")
    y = ds.y[ok]
    metrics = model.target.metrics(y, proba)
    sources = getattr(ds, "sources", None) or ds.paths
    metrics["skipped"] = report.skipped + [{"path": sources[i], "reason": r} for i, r in failures.items()]
    if report.notes and model.task == "text":
        metrics["notes"] = report.notes
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        shown = [ds.paths[i] for i in ok]
        write_evaluation(out_dir, metrics, confident_mistakes(shown, y, proba, model.classes), model.classes,
                         images=model.task == "image")
    return metrics
