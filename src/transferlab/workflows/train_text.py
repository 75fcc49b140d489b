"""The text verbs: ``train_text`` (data -> validated splits -> strategy.fit -> evaluation -> saved model) and
``evaluate_text`` (saved model + labelled data -> metrics). ``transferlab.workflows.train`` and the CLI call these for
``--task text``.

``feature_columns`` (``--feature-columns price,category``) adds side columns to the strategies that put a classifier
head on features (``bow``, ``text_headless``, ``text_fewshot``); ``backbone`` (``--backbone DIR``) is a folder from
``transferlab pretrain-text``: word vectors for the word networks, an adapted MiniLM for the transformer strategies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transferlab.data.report import DataReport
from transferlab.data.texts import TextDataset, find_eval_file, read_text_file, resolve_text_data
from transferlab.errors import DataError, UserError
from transferlab.evaluation import classification_metrics, confident_mistakes, write_evaluation
from transferlab.model import Model
from transferlab.progress import log
from transferlab.strategies import Strategy, get_strategy_class, make_strategy, strategy_names

DEFAULT_TEXT_STRATEGY = "text_headless"


def text_strategy_name(name: str) -> str:
    """Registry names are unique across modalities; ``headless`` means ``text_headless`` for text, and so on."""
    names = strategy_names("text")
    if name in names:
        return name
    if f"text_{name}" in names:
        return f"text_{name}"
    raise UserError(f"unknown text strategy {name!r}; available: {', '.join(names)}")


def make_text_strategy(name: str, **params: Any) -> Strategy:
    name = text_strategy_name(name)
    cls = get_strategy_class(name, "text")
    if "seed" in params and "seed" not in cls._param_names():
        params.pop("seed")
    return make_strategy(name, modality="text", **params)


def backbone_params(strategy: str, backbone: str | os.PathLike[str] | None) -> dict[str, str]:
    """The strategy parameter a ``--backbone DIR`` from ``pretrain-text`` sets: ``embeddings`` (word vectors, for
    the word networks) or ``backbone`` (an adapted transformer). Registered image backbone names (the CLI's
    default) mean nothing for text and are ignored."""
    from transferlab.backbones import list_backbones
    from transferlab.workflows.pretrain_text import read_manifest

    if backbone is None or str(backbone) in {b.name for b in list_backbones()}:
        return {}
    path = Path(backbone)
    if not path.exists():
        raise UserError(f"--backbone {backbone}: no such folder; for text, give a folder written by "
                        "`transferlab pretrain-text`")
    kind = read_manifest(path)["kind"]
    key = "embeddings" if kind == "word_vectors" else "backbone"
    name = text_strategy_name(strategy)
    if key not in get_strategy_class(name, "text")._param_names():
        users = "text_embedding_cnn or text_embedding_rnn" if key == "embeddings" else \
            "text_finetune, text_headless or text_fewshot"
        raise UserError(f"--backbone {backbone}: holds {kind.replace('_', ' ')}, which {name} does not use; "
                        f"use it with {users}")
    return {key: str(path)}


def train_text(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
               strategy: str = DEFAULT_TEXT_STRATEGY, params: dict[str, Any] | None = None, seed: int = 0,
               val_fraction: float = 0.2, eval_split: str | None = None, text_column: str = "text",
               label_column: str = "label", feature_columns: str | Sequence[str] | None = None,
               backbone: str | os.PathLike[str] | None = None) -> Any:
    """Train one text strategy on DATA, evaluate it on the evaluation split and save it to ``out``."""
    from transferlab.data.side_features import parse_feature_columns
    from transferlab.workflows.train import TrainResult

    t_start = time.perf_counter()
    auto = None
    if strategy == "auto":  # measure the data first, then choose (text.compare.auto_text)
        from transferlab.workflows.compare_text import auto_text

        train_ds, eval_ds, report = resolve_text_data(data, text_column, label_column, val_fraction, seed,
                                                      eval_split, feature_columns)
        choice = auto_text(train_ds, seed=seed)
        strategy = choice.strategy
        auto = {"strategy": strategy, "params": dict(choice.params), "reason": choice.reason,
                "cv_scores": choice.scores, "facts": choice.advice.facts}
        log(f"auto: {strategy} {choice.params or ''}. {choice.reason}")
        params = {**choice.params, **dict(params or {})}
    params = {**backbone_params(strategy, backbone), **dict(params or {})}
    params.setdefault("seed", seed)
    model_strategy = make_text_strategy(strategy, **params)
    side_columns, side_kinds = parse_feature_columns(feature_columns)
    if side_columns and not getattr(model_strategy, "uses_side_features", False):
        raise UserError(f"--feature-columns: {model_strategy.name} has no classifier head on features to join "
                        "side columns to; use bow, text_hybrid, text_headless or text_fewshot")
    if auto is None:
        train_ds, eval_ds, report = resolve_text_data(data, text_column, label_column, val_fraction, seed,
                                                      eval_split, feature_columns)
    for line in report.summary_lines():
        log(line)
    t0 = time.perf_counter()
    model_strategy.fit(train_ds)
    train_seconds = time.perf_counter() - t0
    proba = model_strategy.predict_proba(eval_ds)
    metrics = classification_metrics(eval_ds.y, proba, model_strategy.classes_)
    metrics["train_seconds"] = train_seconds
    metrics["total_seconds"] = time.perf_counter() - t_start
    metrics["split"] = "eval"
    if auto is not None:
        metrics["auto"] = auto
    mistakes = confident_mistakes(eval_ds.paths, eval_ds.y, proba, model_strategy.classes_)
    preprocessing: dict[str, Any] = {"text_column": text_column, "label_column": label_column}
    if side_columns:
        preprocessing["feature_columns"] = side_columns
        preprocessing["feature_kinds"] = side_kinds
    model, write_weights = Model.from_strategy(model_strategy, "text", preprocessing, {"data": str(data)})
    model.metrics = metrics
    saved = None
    if out is not None:

        def extra(directory: Path) -> None:
            report.save(directory / "data_report.json")
            write_evaluation(directory, metrics, mistakes, model.classes, images=False)

        saved = model.save(out, write_weights, extra)
    return TrainResult(model=model, metrics=metrics, report=report, out=saved)


def load_labelled_texts(data: str | os.PathLike[str], eval_split: str | None, text_column: str,
                        label_column: str, report: DataReport, feature_columns: Sequence[str] = ()) -> TextDataset:
    root = Path(data)
    if root.is_dir():
        found = find_eval_file(root, eval_split)
        if found is None:
            raise DataError(f"{root}: no val/valid/dev/test file (.csv, .tsv or .jsonl) to evaluate on")
        return read_text_file(found, text_column, label_column, report, "eval", feature_columns)
    if root.is_file():
        return read_text_file(root, text_column, label_column, report, "eval", feature_columns)
    raise DataError(f"{root}: no such file or folder")


def evaluate_text(model_dir: str | os.PathLike[str] | Model, data: str | os.PathLike[str],
                  out: str | os.PathLike[str] | None = None, eval_split: str | None = None,
                  text_column: str | None = None, label_column: str | None = None) -> dict[str, Any]:
    """Metrics of a saved text model on labelled DATA (a file, or a folder's val/valid/dev/test file). Columns
    default to those the model was trained with. Labels the model does not know are an error."""
    model = model_dir if isinstance(model_dir, Model) else Model.load(model_dir)
    if model.task != "text":
        raise UserError(f"{model_dir}: this is a {model.task} model, not a text model")
    pre = model.config.get("preprocessing", {})
    text_column = text_column or pre.get("text_column", "text")
    label_column = label_column or pre.get("label_column", "label")
    report = DataReport(source=str(data))
    side_columns = list(pre.get("feature_columns", []))
    ds = load_labelled_texts(data, eval_split, text_column, label_column, report, side_columns)
    if not ds.texts:
        raise DataError(f"{data}: no usable rows")
    unknown = sorted(set(ds.labels or []) - set(model.classes))
    if unknown:
        raise DataError(f"{data}: classes the model does not know: {', '.join(unknown)}")
    ds.classes = list(model.classes)
    proba, ok, failures = model.predict_proba(ds.rows(text_column) if side_columns else ds.texts)
    y = ds.y[ok]
    metrics = classification_metrics(y, proba, model.classes)
    metrics["skipped"] = report.skipped + [{"path": (ds.sources or [""] * len(ds))[i], "reason": r}
                                           for i, r in failures.items()]
    if report.notes:
        metrics["notes"] = report.notes
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        texts = [ds.paths[i] for i in ok]
        write_evaluation(out_dir, metrics, confident_mistakes(texts, y, proba, model.classes), model.classes,
                         images=False)
    return metrics
