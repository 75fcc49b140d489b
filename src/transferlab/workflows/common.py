"""What every verb does the same way for every modality: name a strategy, build it with the user's backbone and
seed, read the data and leave out what cannot be used, fit and score a strategy, and describe a fitted strategy as a
saved model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.backbones import DEFAULT_BACKBONE, get_backbone, list_backbones
from transferlab.data.labelled import Columns, LabelledData, load_labelled
from transferlab.data.report import DataReport
from transferlab.errors import UserError
from transferlab.evaluation import confident_mistakes
from transferlab.strategies import Strategy, get_strategy_class, make_strategy, strategy_names
from transferlab.tasks import Task


def check_out_folder(out: str | os.PathLike[str] | None) -> None:
    """``--out`` of a command that writes a folder of results, checked before any work: a file there is in the way
    (it is neither written into nor replaced)."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: a file is in the way; the results are a folder, choose another --out")


def check_out_outside_images(out: str | os.PathLike[str] | None, data: str | os.PathLike[str], task: str) -> None:
    """``--out`` inside the image folder DATA is refused before any work: the next run on DATA would read the
    results folder as one more class (its plots as pictures of it)."""
    if out is None or task != "image" or not Path(data).is_dir():
        return
    root, target = Path(data).resolve(), Path(out).resolve()
    if target == root or root in target.parents:
        where = "is the image folder" if target == root else "is inside the image folder"
        raise UserError(f"--out {out} {where} {data}: the next run on it would read the results as one more class "
                        f"(their plots as its pictures); choose a folder outside {data}")


def param_names(cls: type[Strategy]) -> list[str]:
    import inspect

    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def strategy_name(name: str, task: str) -> str:
    """Registry names are unique across modalities; for text, ``headless`` means ``text_headless`` and so on."""
    names = strategy_names(task)
    if name in names:
        return name
    if f"{task}_{name}" in names:
        return f"{task}_{name}"
    other = "text" if task == "image" else "image"
    if name in strategy_names(other) or f"{other}_{name}" in strategy_names(other):
        raise UserError(f"{name!r} is a strategy for {other}, but the data was read as {task} data; pass "
                        f"--task {other} (it then says what the data lacks), or use one of: {', '.join(names)}")
    raise UserError(f"unknown {task} strategy {name!r}; available: {', '.join(names)}")


def backbone_params(cls: type[Strategy], task: str, backbone: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The strategy parameter that ``--backbone`` sets. Images: ``backbone`` (a name, ``a+b``, ``all``). Text: a
    registered encoder name sets ``encoder``; a folder from ``pretrain-text`` sets ``embeddings`` (word vectors, for
    the word networks) or ``backbone`` (an adapted transformer); image backbone names mean nothing for text."""
    if backbone is None:
        return {}
    if task == "image":
        return {"backbone": str(backbone)}
    from transferlab.backbones.folder import read_manifest

    names = param_names(cls)
    text_encoders = {b.name for b in list_backbones("text")}
    if str(backbone) in text_encoders:
        from transferlab.backbones import packaged_transformer

        if "encoder" not in names and "backbone" in names and packaged_transformer(str(backbone)) is not None:
            return {"backbone": str(backbone)}  # a packaged body to fine-tune (text_finetune, text_fewshot)
        if "encoder" not in names:
            raise UserError(f"--backbone {backbone}: {cls.name} does not take a text encoder")
        return {"encoder": str(backbone)}
    if str(backbone) in {b.name for b in list_backbones("image")}:
        return {}
    path = Path(backbone)
    if not path.exists():
        raise UserError(f"--backbone {backbone}: no such folder; for text, give an encoder "
                        f"({', '.join(sorted(text_encoders))}) or a folder written by `transferlab pretrain-text`")
    kind = read_manifest(path)["kind"]
    key = "embeddings" if kind == "word_vectors" else "backbone"
    if key not in names:
        users = "text_embedding_cnn or text_embedding_rnn" if key == "embeddings" else \
            "text_finetune, text_headless or text_fewshot"
        raise UserError(f"--backbone {backbone}: holds {kind.replace('_', ' ')}, which {cls.name} does not use; "
                        f"use it with {users}")
    return {key: str(path)}


def build_strategy(name: str, task: str, backbone: str | os.PathLike[str] | None = None,
                   params: dict[str, Any] | None = None, seed: int | None = None) -> Strategy:
    """A strategy of ``task`` by name (aliases allowed) with ``--backbone`` and ``--param`` applied; ``seed`` is set
    where the strategy takes one."""
    cls = get_strategy_class(strategy_name(name, task), task)
    merged = {**backbone_params(cls, task, backbone), **dict(params or {})}
    if seed is not None and "seed" in param_names(cls):
        merged.setdefault("seed", seed)
    if "seed" in merged and "seed" not in param_names(cls):
        merged.pop("seed")
    return make_strategy(cls.name, task, **merged)


def first_backbone(strategy: Strategy) -> str:
    """The image backbone whose decoding decides which files are usable (the first of an ensemble's pool)."""
    backbone = getattr(strategy, "backbone", None) or DEFAULT_BACKBONE
    needed = type(strategy).backbones_needed(backbone) if hasattr(type(strategy), "backbones_needed") else [backbone]
    return needed[0]


def drop_unreadable(data: LabelledData, backbone: str = DEFAULT_BACKBONE) -> LabelledData:
    """Images: leave out and report the files that cannot be used. The training split goes through ``backbone``
    into the feature cache (every strategy starts from it, and later runs reuse the work); the evaluation split is
    only decoded (its features come from whichever backbones the chosen strategy uses: computing the default
    backbone's here would be wasted work when those are others). Text rows that cannot be used were already left
    out (and reported) when the file was read."""
    if data.task != "image":
        return data
    from transferlab.data.images import check_classes
    from transferlab.features.images import FeatureExtractor

    get_backbone(backbone)
    splits = {"train": data.train, "eval": data.eval}
    extractor = FeatureExtractor(backbone, cache=runtime.get_cache(), progress=runtime.show_progress())
    failures = {"train": extractor.extract(data.train.paths, outputs=("features",), desc="reading images").failures,
                "eval": extractor.unreadable(data.eval.paths, desc="reading evaluation images")}
    bad: dict[str, set[str]] = {name: set() for name in splits}
    for name, found in failures.items():
        for i, reason in found.items():
            path = splits[name].paths[i]
            data.report.skip(path, reason, name)
            bad[name].add(path)
    data.train, data.eval = (ds.without(bad[name]) if bad[name] else ds for name, ds in splits.items())
    check_classes(data.train, f"{data.report.source} (train split, after leaving out unreadable files)")
    data.report.set_counts("train", data.train.labels or [])
    data.report.set_counts("eval", data.eval.labels or [])
    return data


def prepare(data: str | os.PathLike[str], task: str | None = None, val_fraction: float = 0.2, seed: int = 0,
            eval_split: str | None = None, columns: Columns | None = None,
            backbone: str = DEFAULT_BACKBONE) -> LabelledData:
    """DATA read, split and checked: what every verb starts from."""
    return drop_unreadable(load_labelled(data, task, val_fraction, seed, eval_split, columns), backbone)


def target_of(strategy: Strategy, data: LabelledData) -> Task:
    """What a fitted strategy predicts: one label per item, read from the label column (text) or the class
    folders (images), out of the strategy's classes."""
    column = data.columns.label if data.task == "text" else "class folder"
    return Task("classification", column, tuple(strategy.classes_))


def fit_and_score(strategy: Strategy, train: Any, ev: Any, data: LabelledData, mistakes: int = 12) -> dict[str, Any]:
    """Fit on ``train``, score on ``ev`` with the metrics of the task: the metrics, the fit time, the most
    confident mistakes and the probabilities."""
    import time

    t0 = time.perf_counter()
    strategy.fit(train)
    seconds = time.perf_counter() - t0
    proba = strategy.predict_proba(ev)
    metrics = target_of(strategy, data).metrics(ev.y, proba)
    metrics["train_seconds"] = seconds
    return {"metrics": metrics, "proba": proba,
            "mistakes": confident_mistakes(ev.paths, ev.y, proba, strategy.classes_, limit=mistakes)}


def backbone_label(strategy: Strategy) -> str:
    """What a leaderboard or a saved model names as the pretrained part: the image backbone(s), the text encoder or
    folder, or ``tf-idf`` for n-gram models."""
    if getattr(strategy, "backbones_", None):
        return "+".join(strategy.backbones_)
    params = strategy.get_params()
    name = strategy.name
    if strategy.modality == "image":
        return str(params.get("backbone"))
    if name == "bow":
        return "tf-idf"
    if name == "text_hybrid":
        return f"tf-idf+{params.get('encoder', 'minilm')}"
    if name in ("text_embedding_cnn", "text_embedding_rnn"):
        emb = params.get("embeddings", "glove")
        return "glove" if emb == "glove" else str(emb)
    if params.get("backbone"):  # a pretrain-text folder, or a packaged body by name (text_finetune's mpnet)
        body = str(params["backbone"])
        return f"minilm@{Path(body).name}" if Path(body).is_dir() else body
    return str(params.get("encoder", "minilm"))


def saved_preprocessing(strategy: Strategy, data: LabelledData) -> dict[str, Any]:
    """What a saved model needs to read new inputs: the image preprocessing of its one backbone (an ensemble keeps
    one per member), or the text columns."""
    if data.task == "image":
        used = list(getattr(strategy, "backbones_", [strategy.get_params().get("backbone")]))
        return get_backbone(used[0]).preprocessing.to_dict() if len(used) == 1 else {}
    out: dict[str, Any] = {"text_column": data.columns.text, "label_column": data.columns.label}
    from transferlab.data.side_features import parse_feature_columns

    side, kinds = parse_feature_columns(data.columns.features)
    if side:
        out["feature_columns"] = side
        out["feature_kinds"] = kinds
    return out


def report_lines(report: DataReport) -> None:
    from transferlab.progress import log

    for line in report.summary_lines():
        log(line)


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
