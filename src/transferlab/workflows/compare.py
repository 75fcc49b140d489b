"""compare: the strategy bake-off on the user's own data, for every modality.

Runs a set of strategies x backbones over several seeds (or cross-validation folds when data is tiny), reusing the
feature cache, and ranks them. Each finished run is also cached (keyed by strategy, parameters, seed and the exact
rows of both splits), so running compare again on the same data only re-reads results: it is many times faster.

Writes ``leaderboard.json`` / ``.csv`` / ``.md``, ``report.html`` (see :mod:`transferlab.workflows.report`) and the
winner's model in ``DIR/best/``.

The default candidates: images, headless on every backbone, the ensemble of the two backbones ``rank`` puts first,
headless on mid-layer features and frozen_head on the default backbone (``thorough`` adds full fine-tuning, gradual
unfreezing and the from-scratch baseline); text, bow, text_headless on every text encoder, text_hybrid and, when
the class names are words, text_zeroshot (``thorough`` adds text_finetune, text_embedding_cnn and, for few examples
per class, text_fewshot).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.backbones import DEFAULT_BACKBONE, list_backbones
from transferlab.data.labelled import (
    Columns,
    LabelledData,
    data_files_fingerprint,
    detect_task,
    fingerprint,
    model_inputs,
)
from transferlab.data.texts import class_names_are_words
from transferlab.errors import UserError
from transferlab.progress import log, progress_bar
from transferlab.strategies import Strategy, get_strategy_class
from transferlab.workflows.common import (
    backbone_label,
    build_strategy,
    check_out_folder,
    check_out_outside_images,
    fit_and_score,
    prepare,
    saved_preprocessing,
)
from transferlab.workflows.leaderboard import Candidate, CompareResult, aggregate, terminal_table, write_leaderboard

RESULTS_VERSION = 2
TINY_PER_CLASS = 15  # below this many items per class (and no fixed split), use 5-fold cross-validation
FEW_SHOT_PER_CLASS = 64  # text: few-shot candidates join the thorough set at most this many in the smallest class


@dataclass
class Split:
    name: str
    train: Any  # ImageDataset | TextDataset
    eval: Any


# ------------------------------------------------------------------------------------------------ candidates
def _parse_strategy(text: str, task: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:key=value,key=value`` (the name is checked against ``task``'s strategies)."""
    from transferlab.workflows.common import strategy_name

    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        if "=" not in item:
            raise UserError(f"--strategies: expected key=value in {text!r}")
        k, v = item.split("=", 1)
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    return strategy_name(name, task), params


def _text_encoder_params(name: str) -> tuple[tuple[str, Any], ...]:
    """text_headless's parameters for a text backbone: a registered encoder, or a pretrain-text MLM folder."""
    from transferlab.backbones import DEFAULT_TEXT_ENCODER

    if Path(name).is_dir():
        return (("backbone", str(name)),)
    return () if name == DEFAULT_TEXT_ENCODER else (("encoder", name),)


def candidates_for(strategies: list[str] | None = None, backbones: list[str] | None = None,
                   thorough: bool = False, task: str = "image", train: Any = None) -> list[Candidate]:
    """The explicit ``strategies`` (on every backbone for images; an ensemble is one candidate drawing on all of
    them), or the default set of ``task`` (module docstring); ``train`` decides the text extras."""
    from transferlab.features.ranking import candidate_backbones

    names = candidate_backbones(task, backbones)
    if strategies:
        out = []
        for text in strategies:
            name, params = _parse_strategy(text, task)
            if task == "image":
                pool = "all" if backbones is None else "+".join(names)
                pooled = get_strategy_class(name, "image").multi_backbone
                out.extend(Candidate(name, b, tuple(sorted(params.items()))) for b in ([pool] if pooled else names))
            else:
                encoder = params.get("encoder")
                text_encoders = [b.name for b in list_backbones("text")]
                if encoder is not None and encoder not in text_encoders:
                    raise UserError(f"unknown text encoder {encoder!r}; choose one of: {', '.join(text_encoders)}")
                label = backbone_label(build_strategy(name, task, None, params))
                out.append(Candidate(name, label, tuple(sorted(params.items()))))
        return out
    if task == "image":
        main = DEFAULT_BACKBONE if DEFAULT_BACKBONE in names else names[0]
        out = [Candidate("headless", b) for b in names]
        if len(names) > 1:
            out.append(Candidate("headless_ensemble", "all" if backbones is None else "+".join(names)))
        out += [Candidate("headless", main, (("layer", "mid"),)), Candidate("frozen_head", main)]
        if thorough:
            out += [Candidate("finetune", main), Candidate("gradual_unfreeze", main), Candidate("from_scratch", main)]
        return out
    if backbones is None and train is not None:  # slow encoders only where the data is small enough for them
        from transferlab.features.ranking import affordable_encoders

        names, notes = affordable_encoders(names, list(train.texts))
        for note in notes:
            log(f"compare: {note}")
    out = [Candidate("bow", "tf-idf")]
    out += [Candidate("text_headless", f"minilm@{Path(b).name}" if Path(b).is_dir() else b, _text_encoder_params(b))
            for b in names]
    out.append(Candidate("text_hybrid", "tf-idf+minilm"))
    from transferlab.backbones import DEFAULT_TEXT_ENCODER, packaged_transformer

    # a stronger packaged transformer (mpnet) that the data can afford also goes beside TF-IDF
    out += [Candidate("text_hybrid", f"tf-idf+{b}", (("encoder", b),)) for b in names
            if b != DEFAULT_TEXT_ENCODER and not Path(b).is_dir() and packaged_transformer(b)]
    if train is not None and class_names_are_words(list(train.classes)):
        out.append(Candidate("text_zeroshot", "minilm"))
    if thorough:
        out += [Candidate("text_finetune", "minilm"), Candidate("text_embedding_cnn", "glove")]
        if train is not None and int(np.bincount(train.y).min()) <= FEW_SHOT_PER_CLASS:
            out.append(Candidate("text_fewshot", "minilm"))
    return out


# ------------------------------------------------------------------------------------------------ splits
def tiny_data_folds(y: np.ndarray, n_classes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified 5-fold cross-validation indices (fewer folds when a class is smaller) when the data has fewer
    than :data:`TINY_PER_CLASS` items per class; none otherwise. One held-out split of such data is a few items
    per class, too few to compare strategies on."""
    from sklearn.model_selection import StratifiedKFold

    if len(y) / max(n_classes, 1) >= TINY_PER_CLASS:
        return []
    folds = StratifiedKFold(n_splits=max(2, min(5, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y))


def make_splits(data: str | os.PathLike[str], task: str | None, seeds: int, seed: int, val_fraction: float,
                eval_split: str | None, columns: Columns | None = None) -> tuple[list[Split], LabelledData, str]:
    """A fixed evaluation split (a folder or file of its own): the same split for every seed. Otherwise one
    stratified split per seed, or cross-validation folds when the data is tiny."""
    first = prepare(data, task, val_fraction, seed, eval_split, columns)
    if first.fixed:
        return ([Split(f"seed {seed + i}", first.train, first.eval) for i in range(seeds)], first,
                "fixed split" + (f", {seeds} seeds" if seeds > 1 else ""))
    everything = first.everything()
    folds = tiny_data_folds(everything.y, len(everything.classes), seed)
    if folds:
        out = [Split(f"fold {i + 1}", everything.subset(tr.tolist()), everything.subset(te.tolist()))
               for i, (tr, te) in enumerate(folds)]
        return out, first, f"{len(out)}-fold cross-validation (tiny data)"
    out = [Split(f"split seed {seed}", first.train, first.eval)]
    for i in range(1, seeds):
        again = prepare(data, first.task, val_fraction, seed + i, eval_split, columns)
        out.append(Split(f"split seed {seed + i}", again.train, again.eval))
    return out, first, f"{seeds} random stratified split{'s' if seeds > 1 else ''}"


# ------------------------------------------------------------------------------------------------ one run
def _curve(history: Any) -> list[dict[str, float]]:
    """Per-epoch rows of any strategy's history (one stage or several, chained)."""
    if history is None:
        return []
    if hasattr(history, "epochs"):
        return list(history.epochs)
    rows: list[dict[str, float]] = []
    for stage in history:
        for r in stage.get("epochs", []):
            rows.append({**r, "epoch": len(rows) + 1, "stage": stage.get("stage", "")})
    return rows


def _packaged_mb(name: str) -> float:
    """Weights a saved model loads from an installed package at prediction time (the registered backbone's)."""
    from transferlab.backbones import get_backbone, glove, minilm

    saved_as = {minilm.MINILM: minilm.NAME, glove.GLOVE: glove.NAME}  # the names saved text models write
    try:
        spec = get_backbone(saved_as.get(name, name))
    except UserError:  # a folder that is gone, say: nothing packaged to count
        return 0.0
    return spec.num_params * 4 / 1e6


def _loaded_backbones(weights: dict[str, Any]) -> list[str]:
    """The packaged backbones a saved model's weights name, unless it carries its own network."""
    if "members" in weights:
        return [n for m in weights["members"] for n in _loaded_backbones(m)]
    if weights.get("transformer") or weights.get("file"):
        return []
    named = weights.get("backbone") or weights.get("encoder")
    return [str(named)] if named else []


def _fresh(item: Any, i: int) -> Any:
    """The same input as a never-seen one (no cached features), as a service would get it: a text with a unique
    suffix; an image file's bytes with a unique trailer (decoders ignore it)."""
    nonce = f"{time.time_ns()}-{i}"
    if isinstance(item, dict):
        key = next(iter(item))
        return {**item, key: f"{item[key]} ({nonce})"}
    if isinstance(item, str) and os.path.isfile(item):
        return Path(item).read_bytes() + nonce.encode()
    return f"{item} ({nonce})"


def saved_model_cost(strategy: Strategy, data: LabelledData, inputs: list[Any] | None,
                     repeats: int = 9) -> tuple[float, float | None]:
    """(size in MB, median ms to predict one new input) of the model as it would be saved and served: its saved
    folder plus the packaged backbone weights it loads; the latency of the loaded model on never-seen inputs (decode
    or tokenise, features, head), through the read-only cache as a service would run it."""
    from transferlab.model import Model

    model, write_weights = Model.from_strategy(strategy, data.task, saved_preprocessing(strategy, data), {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "m", write_weights)
        own = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
        size = own + sum(_packaged_mb(n) for n in _loaded_backbones(model.config["weights"]))
        if not inputs:
            return size, None
        loaded = Model.load(folder)
        times = []
        for i in range(repeats):
            item = _fresh(inputs[i % len(inputs)], i)
            t = time.perf_counter()
            loaded.predict_proba([item])
            times.append(time.perf_counter() - t)
    return size, float(np.median(times) * 1000)


def run_one(candidate: Candidate, split: Split, data: LabelledData, seed: int,
            measure_latency: bool) -> dict[str, Any]:
    """Fit one candidate on one split and measure it."""
    backbone = candidate.backbone if data.task == "image" else None
    strategy = build_strategy(candidate.strategy, data.task, backbone, candidate.param_dict, seed)
    run = fit_and_score(strategy, split.train, split.eval, data, mistakes=8)
    m = run["metrics"]
    inputs = model_inputs(split.eval.subset(list(range(min(9, len(split.eval))))), data.columns) \
        if measure_latency else None
    size, latency = saved_model_cost(strategy, data, inputs)
    result = {
        "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "roc_auc": m["roc_auc"],
        "confusion_matrix": m["confusion_matrix"], "classes": strategy.classes_,
        "train_seconds": m["train_seconds"], "curve": _curve(getattr(strategy, "history_", None)),
        "mistakes": run["mistakes"], "size_mb": size,
    }
    if data.task == "image":
        result["backbones_used"] = list(getattr(strategy, "backbones_", [candidate.backbone]))
    if latency is not None:
        result["latency_ms_p50"] = latency
    return result


def warm_features(candidates: list[Candidate], splits: list[Split], task: str) -> None:
    """Frozen features of every item for every cached backbone a candidate uses, in one pass each, before any
    timing: the training time in the leaderboard is then the strategy's own, not the one-off extraction."""
    from transferlab.features import extract_features
    from transferlab.features.images import OUTPUTS

    if task == "image":
        items = sorted({p for s in splits for p in s.train.paths + s.eval.paths})
        needed = [b for c in candidates for b in get_strategy_class(c.strategy).backbones_needed(c.backbone)]
    else:
        items = sorted({t for s in splits for t in s.train.texts + s.eval.texts})
        # encoders whose vectors go through the cache (mean-pooled GloVe is computed on the fly, never stored)
        text_encoders = {b.name for b in list_backbones("text") if hasattr(b.encoder(), "cache_key")}
        needed = [part for c in candidates if "backbone" not in c.param_dict for part in c.backbone.split("+")
                  if part in text_encoders]
    for backbone in dict.fromkeys(needed):
        extract_features(backbone, items, outputs=OUTPUTS if task == "image" else ("features",),
                         desc=f"features ({backbone})")


# ------------------------------------------------------------------------------------------------ the run cache
class ResultCache:
    """Finished runs as JSON files in ``<cache>/compare/``, keyed by everything that determines the result."""

    def __init__(self) -> None:
        self.directory = runtime.cache_dir() / "compare"
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        text = json.dumps({"v": RESULTS_VERSION, **parts}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.directory / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        path = self.directory / f"{key}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(value, default=float))
        os.replace(tmp, path)


def run_candidates(candidates: list[Candidate], split_names: list[str],
                   key_parts: Callable[[Candidate, int], dict[str, Any]],
                   run: Callable[[Candidate, int], dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every candidate on every split (``run(candidate, split_index)``), each finished run read from or written to
    the :class:`ResultCache` under ``key_parts(candidate, split_index)``; (runs per candidate key, how many came
    from the cache)."""
    cache = ResultCache()
    runs: dict[str, list[dict[str, Any]]] = {}
    cached = 0
    bar = progress_bar(total=len(candidates) * len(split_names), desc="compare", unit="run",
                       enabled=runtime.show_progress())
    for cand in candidates:
        cand_runs = []
        for i, name in enumerate(split_names):
            key = cache.key(key_parts(cand, i))
            result = cache.get(key)
            if result is None:
                bar.set_postfix_str(f"{cand.label} on {cand.backbone}, {name}")
                result = run(cand, i)
                cache.put(key, result)
            else:
                cached += 1
            cand_runs.append(result)
            bar.update(1)
        runs[cand.key] = cand_runs
    bar.close()
    return runs, cached


def cached_model(stored: Path, target: Path, train: Callable[[], None]) -> None:
    """Copy the model kept at ``stored`` to ``target``; if there is none, ``train()`` writes ``target`` and a copy is
    kept (so the next compare on the same data saves its winner at once)."""
    if (stored / "config.json").exists():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(stored, target)
        return
    train()
    if stored.exists():
        shutil.rmtree(stored)
    shutil.copytree(target, stored)


# ------------------------------------------------------------------------------------------------ the verb
def compare(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
            strategies: list[str] | None = None, backbones: list[str] | None = None, thorough: bool = False,
            seeds: int = 3, seed: int = 0, val_fraction: float = 0.2, eval_split: str | None = None,
            task: str | None = None, text_column: str = "text", label_column: str = "label",
            feature_columns: str | None = None, save_best: bool = True) -> CompareResult:
    """Strategies side by side on DATA (images or text). ``feature_columns`` (text: ``"price,category"``) are
    joined to the features of every candidate with a classifier head; the others see the text alone."""
    from transferlab.analysis.advice import negative_transfer_warning
    from transferlab.workflows.auto import advise

    t_start = time.perf_counter()
    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    check_out_folder(out)
    columns = Columns(text_column, label_column, feature_columns)
    task = detect_task(data, task, text_column)
    check_out_outside_images(out, data, task)
    if task == "image" and feature_columns:
        raise UserError("--feature-columns is for text data (--task text)")
    if task == "image":  # an unknown strategy or backbone is an error before any work
        candidates_for(strategies, backbones, thorough, task)
    splits, first, protocol = make_splits(data, task, seeds, seed, val_fraction, eval_split, columns)
    candidates = candidates_for(strategies, backbones, thorough, task, splits[0].train)
    fingerprints = [(fingerprint(s.train), fingerprint(s.eval)) for s in splits]
    log(f"compare: {len(candidates)} candidates x {len(splits)} runs ({protocol})")
    warm_features(candidates, splits, task)
    runs, cached = run_candidates(
        candidates, [s.name for s in splits],
        lambda cand, i: {"task": task, "strategy": cand.strategy, "backbone": cand.backbone,
                         "params": cand.param_dict, "seed": seed + i, "train": fingerprints[i][0],
                         "eval": fingerprints[i][1]},
        lambda cand, i: run_one(cand, splits[i], first, seed + i, measure_latency=(i == 0)))
    rows = [aggregate(c, runs[c.key]) for c in candidates]
    rows.sort(key=lambda r: (-r["accuracy_mean"], r["train_seconds"]))
    result = CompareResult(rows=rows, runs=runs, protocol=protocol, report=first.report, task=task,
                           cached_runs=cached, warning=negative_transfer_warning(rows, task))
    result.advice = advise(splits[0].train, task).to_dict()
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        if save_best:
            result.winner = save_winner(data, out_dir / "best", rows[0], seed, val_fraction, eval_split, task,
                                        columns)
        write_leaderboard(out_dir, rows)
        result.seconds = time.perf_counter() - t_start
        from transferlab.workflows.report import feature_map, write_report

        write_report(out_dir / "report.html", result, feature_map(splits[0].train, splits[0].eval, task))
    result.seconds = time.perf_counter() - t_start
    return result


def save_winner(data: str | os.PathLike[str], target: Path, row: dict[str, Any], seed: int, val_fraction: float,
                eval_split: str | None, task: str, columns: Columns) -> dict[str, Any]:
    """Train the winner on the first split and save it (a copy kept in the cache makes the next compare instant)."""
    from transferlab.workflows.train import train

    stored = runtime.cache_dir() / "compare-models" / ResultCache.key(
        {"task": task, "row": row["label"], "backbone": row["backbone"], "seed": seed,
         "data": str(Path(data).resolve()), "files": data_files_fingerprint(data),
         "columns": [columns.text, columns.label, columns.features], "val_fraction": val_fraction,
         "eval_split": eval_split})
    uses_side = bool(getattr(get_strategy_class(row["strategy"], task), "uses_side_features", False))
    cached_model(stored, target, lambda: train(
        data, out=target, strategy=row["strategy"], backbone=row["backbone"] if task == "image" else None,
        params=dict(row["params"]), seed=seed, val_fraction=val_fraction, eval_split=eval_split, task=task,
        text_column=columns.text, label_column=columns.label,
        feature_columns=columns.features if uses_side else None))
    return {"strategy": row["strategy"], "backbone": row["backbone"], "params": row["params"], "path": str(target)}


__all__ = ["Candidate", "CompareResult", "candidates_for", "compare", "terminal_table"]
