"""The high-level verbs, each a short composition of the public lower-level calls.

``train``: data -> validated datasets -> strategy.fit -> evaluation -> saved model.
``evaluate``: saved model + labelled data -> metrics.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.backbones import DEFAULT_BACKBONE, get_backbone
from transferlab.data.images import ImageDataset, check_classes, resolve_image_data
from transferlab.data.report import DataReport
from transferlab.errors import UserError
from transferlab.evaluation import classification_metrics, confident_mistakes, write_evaluation
from transferlab.model import Model
from transferlab.progress import log
from transferlab.strategies import Strategy, get_strategy_class, make_strategy


@dataclass
class TrainResult:
    model: Model
    metrics: dict[str, Any]
    report: DataReport
    out: Path | None


def drop_unreadable(splits: dict[str, ImageDataset], report: DataReport, backbone: str) -> dict[str, ImageDataset]:
    """Decode every image once, in one pass over all splits, through the feature cache (so every strategy and
    later run reuses the work); leave out and report the files that cannot be used."""
    from transferlab.features.images import FeatureExtractor

    extractor = FeatureExtractor(backbone, cache=runtime.get_cache(), progress=runtime.show_progress())
    owners = [(name, path) for name, ds in splits.items() for path in ds.paths]
    result = extractor.extract([p for _, p in owners], outputs=("features",), desc="reading images")
    bad: dict[str, set[str]] = {name: set() for name in splits}
    for i, reason in result.failures.items():
        name, path = owners[i]
        report.skip(path, reason, name)
        bad[name].add(path)
    return {name: ds.without(bad[name]) if bad[name] else ds for name, ds in splits.items()}


def prepare_image_data(data: str | os.PathLike[str], backbone: str = DEFAULT_BACKBONE, val_fraction: float = 0.2,
                       seed: int = 0, eval_split: str | None = None
                       ) -> tuple[ImageDataset, ImageDataset, DataReport]:
    train_ds, eval_ds, report = resolve_image_data(data, val_fraction=val_fraction, seed=seed, eval_split=eval_split)
    get_backbone(backbone)
    usable = drop_unreadable({"train": train_ds, "eval": eval_ds}, report, backbone)
    train_ds, eval_ds = usable["train"], usable["eval"]
    check_classes(train_ds, f"{data} (train split, after leaving out unreadable files)")
    report.set_counts("train", train_ds.labels or [])
    report.set_counts("eval", eval_ds.labels or [])
    return train_ds, eval_ds, report


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


def evaluate_strategy(strategy: Strategy, eval_ds: ImageDataset) -> tuple[dict[str, Any], np.ndarray]:
    proba = strategy.predict_proba(eval_ds)
    return classification_metrics(eval_ds.y, proba, strategy.classes_), proba


def train(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, strategy: str = "headless",
          backbone: str | None = None, params: dict[str, Any] | None = None, seed: int = 0,
          val_fraction: float = 0.2, eval_split: str | None = None, resume: bool = False, task: str | None = None,
          text_column: str = "text", label_column: str = "label",
          feature_columns: str | list[str] | None = None) -> TrainResult:
    """Train one strategy on DATA, evaluate it on the evaluation split and save it to ``out``.

    Strategies that train a network checkpoint every epoch into :func:`checkpoint_dir_for` ``(out)``; with
    ``resume=True`` a killed run continues from its last complete epoch (same seed, same final numbers)."""
    if task is None:  # text when DATA is a CSV/JSONL with a text column or a folder with train.csv
        from transferlab.data.texts import looks_like_text_data

        task = "text" if looks_like_text_data(data, text_column) else "image"
    if task == "text":
        from transferlab.workflows.train_text import train_text

        return train_text(data, out, strategy, params, seed, val_fraction, eval_split, text_column, label_column,
                          feature_columns, backbone)
    if feature_columns:
        raise UserError("--feature-columns is for text data (--task text)")
    t_start = time.perf_counter()
    params = dict(params or {})
    auto = None
    if strategy == "auto":
        from transferlab.workflows.rank import auto_select

        train_ds, eval_ds, report = prepare_image_data(data, DEFAULT_BACKBONE, val_fraction, seed, eval_split)
        choice = auto_select(train_ds)
        strategy, backbone = choice.strategy, choice.backbone
        params = {**choice.params, **params}
        auto = {"strategy": strategy, "backbone": backbone, "params": dict(choice.params), "reason": choice.reason,
                "logme": choice.scores}
        log(f"auto: {strategy} on {backbone} {choice.params or ''}. {choice.reason}")
    params.setdefault("seed", seed)
    if backbone is None:  # the strategy's own default: one backbone, or a pool for an ensemble
        backbone = get_strategy_class(strategy, modality="image")().backbone
    model_strategy = make_strategy(strategy, modality="image", backbone=backbone, **params)
    checkpoints = _attach_checkpoints(model_strategy, out, resume)
    if auto is None:
        first = type(model_strategy).backbones_needed(backbone)[0]
        train_ds, eval_ds, report = prepare_image_data(data, first, val_fraction, seed, eval_split)
    for line in report.summary_lines():
        log(line)
    t0 = time.perf_counter()
    model_strategy.fit(train_ds)
    train_seconds = time.perf_counter() - t0
    metrics, proba = evaluate_strategy(model_strategy, eval_ds)
    metrics["train_seconds"] = train_seconds
    metrics["total_seconds"] = time.perf_counter() - t_start
    metrics["split"] = "eval"
    if auto is not None:
        metrics["auto"] = auto
    mistakes = confident_mistakes(eval_ds.paths, eval_ds.y, proba, model_strategy.classes_)
    used = list(getattr(model_strategy, "backbones_", [backbone]))  # an ensemble: the backbones it chose
    preprocessing = get_backbone(used[0]).preprocessing.to_dict() if len(used) == 1 else {}  # else per member
    model, write_weights = Model.from_strategy(model_strategy, "image", preprocessing,
                                               {"backbone": "+".join(used), "data": str(data)})
    model.metrics = metrics
    saved = None
    if out is not None:

        def extra(directory: Path) -> None:
            report.save(directory / "data_report.json")
            write_evaluation(directory, metrics, mistakes, model.classes)

        saved = model.save(out, write_weights, extra)
        if checkpoints is not None:
            shutil.rmtree(checkpoints, ignore_errors=True)
    else:
        model.predictor = None
    return TrainResult(model=model, metrics=metrics, report=report, out=saved)


def evaluate(model_dir: str | os.PathLike[str], data: str | os.PathLike[str], out: str | None = None,
             eval_split: str | None = None, text_column: str | None = None,
             label_column: str | None = None) -> dict[str, Any]:
    """Metrics of a saved model on labelled DATA (a folder of class folders, a train/val folder's eval split, or
    a CSV). Classes unknown to the model are an error."""
    from transferlab.data.images import _find_eval_dir, has_fixed_split
    from transferlab.errors import DataError

    model = Model.load(model_dir)
    if model.task == "text":
        from transferlab.workflows.train_text import evaluate_text

        return evaluate_text(model, data, out, eval_split, text_column, label_column)
    root = Path(data)
    if has_fixed_split(root, eval_split):
        ds = ImageDataset.from_folder(_find_eval_dir(root, eval_split))  # type: ignore[arg-type]
    elif root.is_dir():
        ds = ImageDataset.from_folder(root)
    elif root.is_file():
        ds = ImageDataset.from_csv(root)
    else:
        raise DataError(f"{root}: no such file or folder")
    unknown = sorted(set(ds.labels or []) - set(model.classes))
    if unknown:
        raise DataError(f"{root}: classes the model does not know: {', '.join(unknown)}")
    if not ds.paths:
        raise DataError(f"{root}: no files found")
    ds.classes = list(model.classes)
    proba, ok, failures = model.predict_proba(ds.paths)
    if not ok:
        raise DataError(f"{root}: none of the {len(ds)} files could be read")
    y = ds.y[ok]
    metrics = classification_metrics(y, proba, model.classes)
    metrics["skipped"] = [{"path": ds.paths[i], "reason": r} for i, r in failures.items()]
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [ds.paths[i] for i in ok]
        write_evaluation(out_dir, metrics, confident_mistakes(paths, y, proba, model.classes), model.classes)
    return metrics
