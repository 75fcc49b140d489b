"""The bake-off verbs for text: ``rank`` (which frozen sentence encoder will transfer best), ``--strategy auto``
(measure the data, pick a strategy, say why) and ``compare`` (strategies side by side: leaderboard, report, winner).

They mirror the image verbs in :mod:`transferlab.workflows.rank` and :mod:`transferlab.workflows.compare` and share
their pieces: the transferability scores, the leaderboard files, the run cache and the HTML report.

- rank scores the frozen features of the training split (MiniLM, mean-pooled GloVe, or a MiniLM adapted by
  ``pretrain-text --method mlm``) with LogME, H-score and leave-one-out kNN accuracy, without training.
- auto: few examples per class -> ``text_fewshot`` (SetFit); otherwise the cheap classifiers (``bow``,
  ``text_headless``, ``text_hybrid``) are scored by 3-fold cross-validation on the training split and the best is
  taken, except that plenty of short texts -> ``text_finetune`` unless a cheap one already reaches 0.97.
- compare: the fast set is ``bow``, ``text_headless`` on MiniLM and on GloVe, ``text_hybrid`` and, when the class
  names are words, ``text_zeroshot``; ``--thorough`` adds ``text_finetune``, ``text_embedding_cnn`` and (for few
  examples per class) ``text_fewshot``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.analysis.advice import Advice
from transferlab.data.report import DataReport
from transferlab.data.texts import TextDataset, class_names_are_words, find_eval_file, resolve_text_data
from transferlab.errors import DataError, UserError
from transferlab.evaluation import classification_metrics, confident_mistakes
from transferlab.progress import log, progress_bar
from transferlab.workflows.compare import (
    Candidate,
    CompareResult,
    ResultCache,
    _aggregate,
    _curve,
    _fingerprint,
    _parse_strategy,
    cached_model,
    run_candidates,
    tiny_data_folds,
    write_leaderboard,
)

FEW_SHOT_PER_CLASS = 64  # at most this many examples in the smallest class: few-shot
FINETUNE_PER_CLASS = 500  # at least this many in the smallest class, and short texts: fine-tune MiniLM
SHORT_TEXT_WORDS = 80  # 90th percentile of words per text at most this: "short" (MiniLM sees it all at 128 tokens)
SCORE_SAMPLE = 4000  # rank scores and auto's cross-validation use at most this many training rows
ENCODER_MB = {"minilm": 90.9, "glove": 80.0}  # what a saved model needs beside its own folder (package weights)


def _encoders(backbones: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """(display name, text_headless parameters) per encoder: ``minilm``, ``glove`` or a pretrain-text folder."""
    from transferlab.features.text import TEXT_ENCODERS
    from transferlab.workflows.pretrain_text import transformer_backbone

    out = []
    for name in backbones or list(TEXT_ENCODERS):
        if name in TEXT_ENCODERS:
            out.append((name, {"encoder": name}))
        elif Path(name).is_dir():
            out.append((f"minilm@{Path(name).name}", {"encoder": "minilm", "backbone": transformer_backbone(name)}))
        else:
            raise UserError(f"--backbones {name}: not a text encoder ({', '.join(TEXT_ENCODERS)}) nor a folder from "
                            "`transferlab pretrain-text --method mlm`")
    return out


def _sample(train: TextDataset, limit: int, seed: int) -> TextDataset:
    """At most ``limit`` rows, stratified, in a fixed order (all of them when there are fewer)."""
    if len(train) <= limit:
        return train
    from transferlab.data.images import stratified_split

    keep, _ = stratified_split(train.labels or [], 1 - limit / len(train), seed)
    sub = train.subset(sorted(keep))
    sub.classes = list(train.classes)
    return sub


def rank_text_encoders(train: TextDataset, backbones: list[str] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """One row per frozen text encoder with its transferability scores on (a sample of) the training split;
    sorted best first by LogME."""
    from transferlab.features.text import text_encoder
    from transferlab.workflows.rank import score_features

    data = _sample(train, SCORE_SAMPLE, seed)
    rows = []
    for name, params in _encoders(backbones):
        t = time.perf_counter()
        features = text_encoder(params["encoder"], 256, params.get("backbone")).embed(data.texts)
        embed_s = time.perf_counter() - t
        t = time.perf_counter()
        scores = score_features(features, data.y)
        rows.append({"backbone": name, **scores, "feature_dim": int(features.shape[1]), "scored_rows": len(data),
                     "embed_seconds": embed_s, "score_seconds": time.perf_counter() - t})
    rows.sort(key=lambda r: -r["logme"])
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def rank_text(data: str | os.PathLike[str], backbones: list[str] | None = None, val_fraction: float = 0.2,
              seed: int = 0, eval_split: str | None = None, text_column: str = "text",
              label_column: str = "label") -> list[dict[str, Any]]:
    train, _, report = resolve_text_data(data, text_column, label_column, val_fraction, seed, eval_split)
    for line in report.summary_lines():
        log(line)
    return rank_text_encoders(train, backbones, seed)


def _words_p90(texts: list[str]) -> float:
    return float(np.percentile([len(t.split()) for t in texts], 90)) if texts else 0.0


def recommend_text(train: TextDataset) -> Advice:
    """The text rule of thumb, from measured facts: examples in the smallest class and the length of the texts
    (and whether side columns need a classifier head)."""
    counts = np.bincount(train.y, minlength=len(train.classes))
    smallest, p90 = int(counts.min()), _words_p90(train.texts)
    facts = {"n_train": len(train), "n_classes": len(train.classes), "smallest_class": smallest,
             "words_p90": round(p90, 1)}
    where = (f"{len(train)} training texts in {len(train.classes)} classes (smallest class: {smallest}); 90% of "
             f"the texts have at most {p90:.0f} words")
    if smallest <= FEW_SHOT_PER_CLASS:
        return Advice("text_fewshot", {}, f"{where}: few examples per class, so contrastive fine-tuning of the "
                      "sentence encoder on pairs of them (SetFit) is the best bet; on sst2 with 8 per class it "
                      "scores 0.75 where frozen embeddings score 0.63 (a few minutes).", facts)
    if smallest >= FINETUNE_PER_CLASS and p90 <= SHORT_TEXT_WORDS and train.features:
        return Advice("measure", {}, f"{where}: fine-tuning would suit this much text, but it has no classifier "
                      "head to join the side columns to, so the classifiers that have one are measured.", facts)
    if smallest >= FINETUNE_PER_CLASS and p90 <= SHORT_TEXT_WORDS:
        max_length = 64 if p90 <= 40 else 128
        return Advice("text_finetune", {"max_length": max_length, "epochs": 3}, f"{where}: enough short texts to "
                      f"fine-tune MiniLM end to end (max_length {max_length}, 3 epochs), which beats frozen "
                      "embeddings by 2-6 points on sst2 and ag_news; expect minutes on a CPU.", facts)
    return Advice("measure", {}, f"{where}: between few-shot and plenty, the cheap classifiers on words and frozen "
                  "embeddings (bow, text_headless, text_hybrid) fit best; which of them is measured (`compare`, or "
                  "cross-validation under --strategy auto).", facts)


CHEAP_TEXT_CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("bow", {}), ("text_headless", {}), ("text_hybrid", {}))


def _cross_validate_cheap(train: TextDataset, seed: int, folds: int) -> tuple[dict[str, float], dict[str, str], int]:
    """k-fold macro-F1 (accuracy on balanced classes, and fair to the small ones otherwise) of each of
    :data:`CHEAP_TEXT_CANDIDATES` on (a sample of) ``train``; the candidates that cannot use these texts, with the
    reason; k."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from transferlab.workflows.train_text import make_text_strategy

    data = _sample(train, SCORE_SAMPLE, seed)
    y = data.y
    cv = StratifiedKFold(n_splits=max(2, min(folds, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    unusable: dict[str, str] = {}
    bar = progress_bar(total=len(CHEAP_TEXT_CANDIDATES) * cv.get_n_splits(), desc="auto: cross-validation",
                       unit="fit", enabled=runtime.show_progress())
    for name, params in CHEAP_TEXT_CANDIDATES:
        accs = []
        try:
            for tr, te in cv.split(np.zeros(len(y)), y):
                part, held = data.subset(tr.tolist()), data.subset(te.tolist())
                part.classes = held.classes = list(data.classes)
                model = make_text_strategy(name, seed=seed, **params).fit(part)
                pred = model.predict_proba(held).argmax(1)
                accs.append(float(f1_score(held.y, pred, average="macro")))
                bar.update(1)
        except DataError as e:  # this candidate cannot use these texts; the others may
            unusable[name] = str(e)
            continue
        scores[name] = float(np.mean(accs))
    bar.close()
    if not scores:
        raise DataError("no strategy could be fitted to these texts: " + "; ".join(unusable.values()))
    return scores, unusable, cv.get_n_splits()


CHEAP_IS_ENOUGH = 0.97  # cross-validated macro-F1 of a cheap classifier from which fine-tuning is not worth minutes


def auto_text(train: TextDataset, seed: int = 0, folds: int = 3) -> Any:
    """``--strategy auto`` for text: :func:`recommend_text`, then 3-fold cross-validation of ``bow``,
    ``text_headless`` and ``text_hybrid`` on (a sample of) the training split, unless the advice is few-shot.

    When the advice is "measure", the best of the three (by macro-F1) is chosen. When it is fine-tuning,
    fine-tuning is chosen unless the best of the three already reaches :data:`CHEAP_IS_ENOUGH`: then at most 3
    points are left for minutes of fine-tuning to win, and the cheap classifier (seconds) is chosen instead. On
    sms_spam the cheap classifiers reach test macro-F1 0.97-0.99 in seconds; fine-tuning took 210 s for 0.983.
    """
    from transferlab.workflows.rank import AutoChoice

    advice = recommend_text(train)
    if advice.strategy not in ("measure", "text_finetune"):
        return AutoChoice(advice.strategy, "minilm", dict(advice.params), advice.reason, advice, {})
    scores, unusable, k = _cross_validate_cheap(train, seed, folds)
    best = max(scores, key=lambda name: (scores[name], -list(scores).index(name)))
    others = ", ".join([f"{name} {v:.3f}" for name, v in scores.items() if name != best]
                       + [f"{name} not usable: {why}" for name, why in unusable.items()])
    how = f"{k}-fold cross-validation on the training split"
    if advice.strategy == "text_finetune":
        if scores[best] < CHEAP_IS_ENOUGH:
            reason = f"{advice.reason} The cheap classifiers leave room ({how}: {best} {scores[best]:.3f}; {others})."
            return AutoChoice("text_finetune", "minilm", dict(advice.params), reason, advice, scores)
        reason = (f"{advice.reason} But {best} already reaches macro-F1 {scores[best]:.3f} in {how} ({others}): "
                  f"fine-tuning has at most {100 * (1 - scores[best]):.1f} points left to win, so {best} is chosen "
                  "(seconds, not minutes).")
    else:
        reason = f"{advice.reason} {how} chose {best} ({scores[best]:.3f}; {others})."
    return AutoChoice(best, "minilm", {}, reason, Advice(best, {}, reason, advice.facts), scores)


# ---------------------------------------------------------------------------------------------------- compare


def text_candidates(strategies: list[str] | None, thorough: bool, train: TextDataset) -> list[Candidate]:
    """Explicit ``strategies`` (``name`` or ``name:key=value,...``), or the fast default set (+ ``thorough``)."""
    from transferlab.features.text import text_encoder
    from transferlab.workflows.train_text import text_strategy_name

    if strategies:
        out = []
        for text in strategies:
            name, params = _parse_text_strategy(text)
            out.append(Candidate(name, _backbone_label(name, params), tuple(sorted(params.items()))))
    else:
        out = [Candidate("bow", "tf-idf"), Candidate("text_headless", "minilm"),
               Candidate("text_headless", "glove", (("encoder", "glove"),)),
               Candidate("text_hybrid", "tf-idf+minilm")]
        if class_names_are_words(list(train.classes)):
            out.append(Candidate("text_zeroshot", "minilm"))
        if thorough:
            out += [Candidate("text_finetune", "minilm"), Candidate("text_embedding_cnn", "glove")]
            if int(np.bincount(train.y).min()) <= FEW_SHOT_PER_CLASS:
                out.append(Candidate("text_fewshot", "minilm"))
    for c in out:
        text_strategy_name(c.strategy)
        if "encoder" in c.param_dict:
            text_encoder(str(c.param_dict["encoder"]))  # an unknown encoder is an error before any run
    return out


def _parse_text_strategy(text: str) -> tuple[str, dict[str, Any]]:
    from transferlab.workflows.train_text import text_strategy_name

    name, params = _parse_strategy(text, modality=None)
    return text_strategy_name(name), params


def _backbone_label(strategy: str, params: dict[str, Any]) -> str:
    if strategy == "bow":
        return "tf-idf"
    if strategy == "text_hybrid":
        return "tf-idf+minilm"
    if strategy in ("text_embedding_cnn", "text_embedding_rnn"):
        return "glove" if params.get("embeddings", "glove") == "glove" else str(params["embeddings"])
    return str(params.get("encoder", "minilm"))


def _size_mb(strategy: Any) -> float:
    """The saved model folder, plus the packaged encoder weights it loads at prediction time: the ``encoder`` its
    saved weights name (MiniLM or GloVe), unless it carries its own ``transformer`` body."""
    from transferlab.features.text import GLOVE, MINILM
    from transferlab.model import Model

    model, write_weights = Model.from_strategy(strategy, "text", {"text_column": "text"}, {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "m", write_weights)
        own = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
    weights = model.config["weights"]
    packaged = {MINILM: ENCODER_MB["minilm"], GLOVE: ENCODER_MB["glove"]}
    return own + (0.0 if weights.get("transformer") else packaged.get(weights.get("encoder"), 0.0))


def _latency_ms(strategy: Any, ev: TextDataset, repeats: int = 9) -> float:
    """Median time to classify one new row (its text never seen, so no cached embedding), as a service would."""
    times = []
    for i in range(repeats):
        one = ev.subset([i % len(ev)])
        one.texts = [f"{one.texts[0]} ({time.time_ns()}-{i})"]
        t = time.perf_counter()
        strategy.predict_proba(one)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _text_splits(data: str | os.PathLike[str], seeds: int, seed: int, val_fraction: float, eval_split: str | None,
                 text_column: str, label_column: str, feature_columns: str | None = None,
                 ) -> tuple[list[tuple[str, TextDataset, TextDataset]], DataReport, str]:
    root = Path(data)
    fixed = root.is_dir() and find_eval_file(root, eval_split) is not None
    train, ev, report = resolve_text_data(data, text_column, label_column, val_fraction, seed, eval_split,
                                          feature_columns)
    if fixed:
        return [(f"seed {seed + i}", train, ev) for i in range(seeds)], report, "fixed split, several seeds"
    everything = train.concat(ev)
    folds = tiny_data_folds(everything.y, len(everything.classes), seed)
    if folds:
        splits = [(f"fold {i + 1}", everything.subset(tr.tolist()), everything.subset(te.tolist()))
                  for i, (tr, te) in enumerate(folds)]
        return splits, report, f"{len(splits)}-fold cross-validation (tiny data)"
    splits = [(f"split seed {seed}", train, ev)]
    for i in range(1, seeds):
        tr, e, _ = resolve_text_data(data, text_column, label_column, val_fraction, seed + i, eval_split,
                                     feature_columns)
        splits.append((f"split seed {seed + i}", tr, e))
    return splits, report, f"{seeds} random stratified splits"


def _run_one(candidate: Candidate, train: TextDataset, ev: TextDataset, seed: int,
             measure_latency: bool) -> dict[str, Any]:
    from transferlab.workflows.train_text import make_text_strategy

    strategy = make_text_strategy(candidate.strategy, **{**candidate.param_dict, "seed": seed})
    t0 = time.perf_counter()
    strategy.fit(train)
    train_seconds = time.perf_counter() - t0
    proba = strategy.predict_proba(ev)
    metrics = classification_metrics(ev.y, proba, strategy.classes_)
    result = {
        "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "roc_auc": metrics["roc_auc"],
        "confusion_matrix": metrics["confusion_matrix"], "classes": strategy.classes_,
        "train_seconds": train_seconds, "curve": _curve(getattr(strategy, "history_", None)),
        "mistakes": confident_mistakes(ev.paths, ev.y, proba, strategy.classes_, limit=8),
        "size_mb": _size_mb(strategy),
    }
    if measure_latency:
        result["latency_ms_p50"] = _latency_ms(strategy, ev)
    return result


def _uses_side(strategy: str) -> bool:
    from transferlab.strategies import get_strategy_class

    return bool(getattr(get_strategy_class(strategy, "text"), "uses_side_features", False))


def _files_fingerprint(data: str | os.PathLike[str]) -> str:
    """The data files themselves (a folder's own .csv/.tsv/.jsonl files, not whatever else lives beside them)."""
    from transferlab.data.texts import TEXT_SUFFIXES

    root = Path(data)
    files = (sorted(str(p) for p in root.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
             if root.is_dir() else [str(root)])
    return _fingerprint(files)


def negative_transfer_warning_text(rows: list[dict[str, Any]]) -> str | None:
    """A warning when bag-of-words (no pretraining at all) beats every candidate built on a pretrained encoder."""
    bow = [r for r in rows if r["strategy"] == "bow"]
    pretrained = [r for r in rows if r["strategy"] not in ("bow", "text_zeroshot")]
    if not bow or not pretrained:
        return None
    b, p = max(bow, key=lambda r: r["accuracy_mean"]), max(pretrained, key=lambda r: r["accuracy_mean"])
    if b["accuracy_mean"] > p["accuracy_mean"] + 0.005:
        return (f"negative transfer: bag-of-words with no pretraining ({b['accuracy_mean']:.3f}) beat every "
                f"pretrained encoder (best {p['label']} on {p['backbone']}: {p['accuracy_mean']:.3f}); the words "
                "themselves carry the signal here")
    return None


def compare_text(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 strategies: list[str] | None = None, thorough: bool = False, seeds: int = 3, seed: int = 0,
                 val_fraction: float = 0.2, eval_split: str | None = None, text_column: str = "text",
                 label_column: str = "label", save_best: bool = True,
                 feature_columns: str | None = None) -> CompareResult:
    """Text strategies side by side on DATA; finished runs are cached, so a second compare is quick.
    ``feature_columns`` (``"price,category"``) are joined to the features of every candidate with a classifier head
    (bow, text_headless, text_hybrid, text_fewshot); the others see the text alone."""
    t_start = time.perf_counter()
    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    splits, report, protocol = _text_splits(data, seeds, seed, val_fraction, eval_split, text_column, label_column,
                                            feature_columns)
    candidates = text_candidates(strategies, thorough, splits[0][1])
    data_key = {"files": _files_fingerprint(data), "text_column": text_column, "label_column": label_column,
                "val_fraction": val_fraction, "eval_split": eval_split, "feature_columns": feature_columns}
    log(f"compare: {len(candidates)} text candidates x {len(splits)} runs ({protocol})")
    if any(c.backbone.endswith("minilm") and "backbone" not in c.param_dict for c in candidates):
        from transferlab.features.text import (
            SentenceEncoder,  # embedded once, before any timing: train seconds are the strategy's
        )

        SentenceEncoder(256).embed(sorted({t for _, tr, e in splits for t in tr.texts + e.texts}))
    runs, cached = run_candidates(
        candidates, [name for name, _, _ in splits],
        lambda cand, i: {"task": "text", "strategy": cand.strategy, "params": cand.param_dict, "seed": seed + i,
                         "split": splits[i][0], **data_key},
        lambda cand, i: _run_one(cand, splits[i][1], splits[i][2], seed + i, measure_latency=(i == 0)))
    rows = [_aggregate(c, runs[f"{c.label}|{c.backbone}"]) for c in candidates]
    rows.sort(key=lambda r: (-r["accuracy_mean"], r["train_seconds"]))
    result = CompareResult(rows=rows, runs=runs, protocol=protocol, report=report, cached_runs=cached,
                           warning=negative_transfer_warning_text(rows))
    result.advice = recommend_text(splits[0][1]).to_dict()
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        if save_best:
            result.winner = _save_winner(data, out_dir / "best", rows[0], seed, val_fraction, eval_split,
                                         text_column, label_column, feature_columns)
        write_leaderboard(out_dir, rows)
        result.seconds = time.perf_counter() - t_start
        from transferlab.workflows.report import write_report

        train, ev = splits[0][1], splits[0][2]
        write_report(out_dir / "report.html", result, None, map_data=text_feature_map(train, ev))
    result.seconds = time.perf_counter() - t_start
    return result


def _save_winner(data: str | os.PathLike[str], target: Path, row: dict[str, Any], seed: int, val_fraction: float,
                 eval_split: str | None, text_column: str, label_column: str,
                 feature_columns: str | None = None) -> dict[str, Any]:
    """Train the winner on the first split and save it (a copy kept in the cache makes the next compare quick)."""
    from transferlab.workflows.train_text import train_text

    stored = runtime.cache_dir() / "compare-models" / ResultCache.key(
        {"task": "text", "row": row["label"], "seed": seed, "files": _files_fingerprint(data),
         "columns": [text_column, label_column, feature_columns], "val_fraction": val_fraction,
         "eval_split": eval_split})
    cached_model(stored, target, lambda: train_text(
        data, out=target, strategy=row["strategy"], params=dict(row["params"]), seed=seed, val_fraction=val_fraction,
        eval_split=eval_split, text_column=text_column, label_column=label_column,
        feature_columns=feature_columns if _uses_side(row["strategy"]) else None))
    return {"strategy": row["strategy"], "backbone": row["backbone"], "params": row["params"], "path": str(target)}


def text_feature_map(train: TextDataset, ev: TextDataset, limit: int = 2000) -> tuple[np.ndarray, np.ndarray,
                                                                                     list[str], str]:
    """2-D t-SNE of the MiniLM embeddings of (a sample of) train + eval, for the report."""
    from transferlab.features.text import SentenceEncoder
    from transferlab.workflows.report import tsne_coords

    both = _sample(train.concat(ev), limit, 0)
    coords = tsne_coords(["text", "minilm", *both.texts], lambda: SentenceEncoder(256).embed(both.texts))
    return coords, both.y, list(train.classes), "t-SNE of MiniLM sentence embeddings, coloured by class"
