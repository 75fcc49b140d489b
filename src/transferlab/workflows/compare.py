"""compare: the strategy bake-off on the user's own data.

Runs a set of strategies x backbones over several seeds (or cross-validation folds when data is tiny), reusing the
feature cache, and ranks them. Each finished run is also cached (keyed by strategy, parameters, seed and the exact
files of both splits), so running compare again on the same data only re-reads results: it is many times faster.

Writes ``leaderboard.json`` / ``.csv`` / ``.md``, ``report.html`` (see :mod:`transferlab.workflows.report`) and the
winner's model in ``DIR/best/``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.backbones import DEFAULT_BACKBONE, get_backbone, list_backbones
from transferlab.data.images import ImageDataset, has_fixed_split, resolve_image_data
from transferlab.data.report import DataReport
from transferlab.errors import UserError
from transferlab.evaluation import classification_metrics, confident_mistakes
from transferlab.progress import log, progress_bar
from transferlab.strategies import get_strategy_class, make_strategy

RESULTS_VERSION = 1
TINY_PER_CLASS = 15  # below this many images per class (and no fixed split), use 5-fold cross-validation
LEADERBOARD_COLUMNS = ["strategy", "backbone", "accuracy_mean", "accuracy_std", "macro_f1", "roc_auc",
                       "train_seconds", "latency_ms_p50", "size_mb"]


@dataclass(frozen=True)
class Candidate:
    strategy: str
    backbone: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.strategy}[{extra}]" if extra else self.strategy


def _parse_strategy(text: str, modality: str | None = "image") -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:key=value,key=value`` (the name is checked against ``modality``'s strategies)."""
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
    if modality is not None:
        get_strategy_class(name, modality=modality)
    return name, params


def candidates_for(strategies: list[str] | None = None, backbones: list[str] | None = None,
                   thorough: bool = False) -> list[Candidate]:
    """The explicit product of ``strategies`` x ``backbones``, or the default set: headless on every backbone, the
    ensemble of the two backbones ``rank`` puts first, headless on mid-layer features and frozen_head on the default
    backbone; ``thorough`` adds full fine-tuning, gradual unfreezing and the from-scratch baseline. An ensemble
    strategy is one candidate drawing on all the backbones, not one per backbone."""
    names = backbones or [s.name for s in list_backbones("image")]
    for b in names:
        get_backbone(b)
    pool = "all" if backbones is None else "+".join(names)
    if strategies:
        out = []
        for text in strategies:
            name, params = _parse_strategy(text)
            pooled = get_strategy_class(name, modality="image").multi_backbone
            out.extend(Candidate(name, b, tuple(sorted(params.items()))) for b in ([pool] if pooled else names))
        return out
    main = DEFAULT_BACKBONE if DEFAULT_BACKBONE in names else names[0]
    out = [Candidate("headless", b) for b in names]
    if len(names) > 1:
        out.append(Candidate("headless_ensemble", pool))
    out.append(Candidate("headless", main, (("layer", "mid"),)))
    out.append(Candidate("frozen_head", main))
    if thorough:
        out += [Candidate("finetune", main), Candidate("gradual_unfreeze", main), Candidate("from_scratch", main)]
    return out


def _fingerprint(paths: list[str]) -> str:
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class Split:
    name: str
    train: ImageDataset
    eval: ImageDataset


def tiny_data_folds(y: np.ndarray, n_classes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified 5-fold cross-validation indices (fewer folds when a class is smaller) when the data has fewer
    than :data:`TINY_PER_CLASS` items per class; none otherwise. One held-out split of such data is a few items
    per class, too few to compare strategies on."""
    from sklearn.model_selection import StratifiedKFold

    if len(y) / max(n_classes, 1) >= TINY_PER_CLASS:
        return []
    folds = StratifiedKFold(n_splits=max(2, min(5, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y))


def make_splits(data: str | os.PathLike[str], seeds: int, seed: int, val_fraction: float,
                eval_split: str | None, report: DataReport | None = None) -> tuple[list[Split], DataReport, str]:
    """Fixed train/eval folders: the same split for every seed. One folder of classes: one stratified split per
    seed, or 5-fold cross-validation when the data is tiny."""

    from transferlab.workflows.train import drop_unreadable

    train, ev, rep = resolve_image_data(data, val_fraction=val_fraction, seed=seed, eval_split=eval_split)
    fixed = has_fixed_split(data, eval_split)
    usable = drop_unreadable({"train": train, "eval": ev}, rep, DEFAULT_BACKBONE)
    train, ev = usable["train"], usable["eval"]
    rep.set_counts("train", train.labels or [])
    rep.set_counts("eval", ev.labels or [])
    if fixed:
        return [Split(f"seed {seed + i}", train, ev) for i in range(seeds)], rep, "fixed split, several seeds"
    everything = ImageDataset(train.paths + ev.paths, (train.labels or []) + (ev.labels or []), list(train.classes),
                              train.source)
    folds = tiny_data_folds(everything.y, len(everything.classes), seed)
    if folds:
        out = [Split(f"fold {i + 1}", everything.subset(tr), everything.subset(te)) for i, (tr, te) in enumerate(folds)]
        return out, rep, f"{len(out)}-fold cross-validation (tiny data)"
    from transferlab.data.images import stratified_split

    out = []
    for i in range(seeds):
        tr, te = stratified_split(everything.labels or [], val_fraction, seed + i)
        out.append(Split(f"split seed {seed + i}", everything.subset(tr), everything.subset(te)))
    return out, rep, f"{seeds} random stratified splits"


def _size_mb(strategy: Any) -> float:
    if hasattr(strategy, "members_"):
        return sum(_size_mb(m) for m in strategy.members_)
    if hasattr(strategy, "net_"):
        return sum(p.numel() for p in strategy.net_.parameters()) * 4 / 1e6
    spec = get_backbone(strategy.backbone)
    head = sum(v.nbytes for v in strategy.head_.tensors().values()) if hasattr(strategy, "head_") else 0
    return spec.num_params * 4 / 1e6 + head / 1e6


def _latency_ms(strategy: Any, paths: list[str], repeats: int = 9) -> float:
    """Median time to predict one image from its file, as a service would (decode, preprocess, network, head)."""
    from transferlab.data.images import load_image

    times = []
    members = getattr(strategy, "members_", [strategy])
    if all(hasattr(m, "head_") for m in members):
        from transferlab.features.images import FeatureExtractor
        from transferlab.strategies._features import LAYERS

        parts = [(FeatureExtractor(m.backbone, cache=runtime.get_cache(), progress=False), LAYERS[m.layer], m.head_)
                 for m in members]
        for p in (paths * repeats)[:repeats]:
            t = time.perf_counter()
            for ex, outputs, head in parts:
                x = ex.prep(load_image(p, draft_size=ex.prep.resize))[None]
                res = ex.run_arrays(x)
                head.predict_proba(np.concatenate([res[o] for o in outputs], axis=1))
            times.append(time.perf_counter() - t)
    else:
        for p in (paths * repeats)[:repeats]:
            t = time.perf_counter()
            strategy.predict_proba(ImageDataset.from_paths([p]))
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


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


def _extract_once(candidates: list[Candidate], splits: list[Split]) -> None:
    """Frozen features of every image for every backbone a candidate uses, in one pass each, before any timing:
    the training time in the leaderboard is then the strategy's own, not the one-off extraction."""
    from transferlab.features.images import OUTPUTS, FeatureExtractor

    paths = sorted({p for s in splits for p in s.train.paths + s.eval.paths})
    needed = (b for c in candidates for b in get_strategy_class(c.strategy).backbones_needed(c.backbone))
    for backbone in dict.fromkeys(needed):
        ex = FeatureExtractor(backbone, cache=runtime.get_cache(), progress=runtime.show_progress())
        ex.extract(paths, outputs=OUTPUTS, desc=f"features ({backbone})")


def run_one(candidate: Candidate, split: Split, seed: int, measure_latency: bool) -> dict[str, Any]:
    params = {**candidate.param_dict, "seed": seed}
    strategy = make_strategy(candidate.strategy, modality="image", backbone=candidate.backbone, **params)
    t0 = time.perf_counter()
    strategy.fit(split.train)
    train_seconds = time.perf_counter() - t0
    proba = strategy.predict_proba(split.eval)
    metrics = classification_metrics(split.eval.y, proba, strategy.classes_)
    result = {
        "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "roc_auc": metrics["roc_auc"],
        "confusion_matrix": metrics["confusion_matrix"], "classes": strategy.classes_,
        "train_seconds": train_seconds, "curve": _curve(getattr(strategy, "history_", None)),
        "mistakes": confident_mistakes(split.eval.paths, split.eval.y, proba, strategy.classes_, limit=8),
        "size_mb": _size_mb(strategy),
        "backbones_used": list(getattr(strategy, "backbones_", [candidate.backbone])),
    }
    if measure_latency:
        result["latency_ms_p50"] = _latency_ms(strategy, split.eval.paths[:9])
    return result


def run_candidates(candidates: list[Candidate], split_names: list[str],
                   key_parts: Callable[[Candidate, int], dict[str, Any]],
                   run: Callable[[Candidate, int], dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every candidate on every split (``run(candidate, split_index)``), each finished run read from or written to
    the :class:`ResultCache` under ``key_parts(candidate, split_index)``; (runs per ``label|backbone``, how many
    came from the cache). Shared by the image and the text compare."""
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
        runs[f"{cand.label}|{cand.backbone}"] = cand_runs
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


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    runs: dict[str, list[dict[str, Any]]]
    protocol: str
    report: DataReport
    winner: dict[str, Any] | None = None
    advice: dict[str, Any] | None = None
    warning: str | None = None
    seconds: float = 0.0
    cached_runs: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def _aggregate(candidate: Candidate, runs: list[dict[str, Any]]) -> dict[str, Any]:
    accs = [r["accuracy"] for r in runs]
    aucs = [r["roc_auc"] for r in runs if r.get("roc_auc") is not None]
    latency = next((r["latency_ms_p50"] for r in runs if "latency_ms_p50" in r), None)
    used = {"+".join(r.get("backbones_used", [candidate.backbone])) for r in runs}
    return {  # an ensemble that chose the same backbones in every run is shown (and saved) with them
        "strategy": candidate.strategy, "backbone": used.pop() if len(used) == 1 else candidate.backbone,
        "key": f"{candidate.label}|{candidate.backbone}", "params": candidate.param_dict,
        "label": candidate.label, "layer": candidate.param_dict.get("layer", "top"),
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
        "macro_f1": float(np.mean([r["macro_f1"] for r in runs])),
        "roc_auc": float(np.mean(aucs)) if aucs else None,
        "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
        "latency_ms_p50": latency, "size_mb": runs[0]["size_mb"], "runs": len(runs),
    }


def compare(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
            strategies: list[str] | None = None, backbones: list[str] | None = None, thorough: bool = False,
            seeds: int = 3, seed: int = 0, val_fraction: float = 0.2, eval_split: str | None = None,
            save_best: bool = True) -> CompareResult:
    t_start = time.perf_counter()
    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    candidates = candidates_for(strategies, backbones, thorough)
    splits, report, protocol = make_splits(data, seeds, seed, val_fraction, eval_split)
    fingerprints = [(_fingerprint(s.train.paths), _fingerprint(s.eval.paths)) for s in splits]
    log(f"compare: {len(candidates)} candidates x {len(splits)} runs ({protocol})")
    _extract_once(candidates, splits)
    runs, cached = run_candidates(
        candidates, [s.name for s in splits],
        lambda cand, i: {"strategy": cand.strategy, "backbone": cand.backbone, "params": cand.param_dict,
                         "seed": seed + i, "train": fingerprints[i][0], "eval": fingerprints[i][1]},
        lambda cand, i: run_one(cand, splits[i], seed + i, measure_latency=(i == 0)))
    rows = [_aggregate(c, runs[f"{c.label}|{c.backbone}"]) for c in candidates]
    rows.sort(key=lambda r: (-r["accuracy_mean"], r["train_seconds"]))
    from transferlab.analysis.advice import negative_transfer_warning

    result = CompareResult(rows=rows, runs=runs, protocol=protocol, report=report, cached_runs=cached,
                           warning=negative_transfer_warning(rows))
    result.advice = advise_from_data(splits[0].train).to_dict()
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        if save_best:
            result.winner = save_winner(data, out_dir / "best", rows[0], seed, val_fraction, eval_split)
        write_leaderboard(out_dir, rows)
        result.seconds = time.perf_counter() - t_start
        from transferlab.workflows.report import write_report

        write_report(out_dir / "report.html", result, splits[0])
    result.seconds = time.perf_counter() - t_start
    return result


def advise_from_data(train: ImageDataset):  # noqa: ANN201 - Advice
    """Measure size, classes and closeness to ImageNet (the default backbone's own head) and recommend."""
    from transferlab.analysis.advice import recommend
    from transferlab.analysis.transferability import imagenet_confidence
    from transferlab.features.images import FeatureExtractor

    ex = FeatureExtractor(DEFAULT_BACKBONE, cache=runtime.get_cache(), progress=runtime.show_progress())
    logits = ex.extract(train.paths, outputs=("logits",), desc="measuring domain").arrays["logits"]
    return recommend(len(train), len(train.classes), imagenet_confidence(logits))


def save_winner(data: str | os.PathLike[str], target: Path, row: dict[str, Any], seed: int, val_fraction: float,
                eval_split: str | None) -> dict[str, Any]:
    """Train the winner on the first split and save it (a copy kept in the cache makes the next compare instant)."""
    from transferlab.workflows.train import train

    stored = runtime.cache_dir() / "compare-models" / ResultCache.key(
        {"row": row["label"], "backbone": row["backbone"], "seed": seed, "data": str(Path(data).resolve()),
         "files": _fingerprint(sorted(str(p) for p in Path(data).rglob("*") if p.is_file()))})
    cached_model(stored, target, lambda: train(data, out=target, strategy=row["strategy"], backbone=row["backbone"],
                                               params=dict(row["params"]), seed=seed, val_fraction=val_fraction,
                                               eval_split=eval_split))
    return {"strategy": row["strategy"], "backbone": row["backbone"], "params": row["params"], "path": str(target)}


def write_leaderboard(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    public = [{c: r[c] for c in LEADERBOARD_COLUMNS} | {"params": r["params"]} for r in rows]
    (out_dir / "leaderboard.json").write_text(json.dumps(public, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*LEADERBOARD_COLUMNS, "params"])
    writer.writeheader()
    for r in public:
        writer.writerow({**r, "params": json.dumps(r["params"])})
    (out_dir / "leaderboard.csv").write_text(buf.getvalue())
    (out_dir / "leaderboard.md").write_text(markdown_table(rows) + "\n")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| # | strategy | backbone | accuracy | macro-F1 | ROC AUC | train s | latency ms | size MB |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['label']} | {r['backbone']} | {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | "
                     f"{_fmt(r['macro_f1'])} | {_fmt(r['roc_auc'])} | {_fmt(r['train_seconds'], 1)} | "
                     f"{_fmt(r['latency_ms_p50'], 1)} | {_fmt(r['size_mb'], 1)} |")
    return "\n".join(lines)


def terminal_table(rows: list[dict[str, Any]]) -> str:
    w = max([22, *(len(r["label"]) + 2 for r in rows)])
    wb = max([20, *(len(r["backbone"]) + 2 for r in rows)])
    lines = [f"{'#':>2}  {'strategy':<{w}}{'backbone':<{wb}}{'accuracy':>16}{'macro-F1':>10}{'train s':>9}"
             f"{'ms/item':>8}{'MB':>7}"]
    for i, r in enumerate(rows, 1):
        acc = f"{r['accuracy_mean']:.3f}±{r['accuracy_std']:.3f}"
        lines.append(f"{i:>2}  {r['label']:<{w}}{r['backbone']:<{wb}}{acc:>16}{r['macro_f1']:>10.3f}"
                     f"{r['train_seconds']:>9.1f}{_fmt(r['latency_ms_p50'], 1):>8}{r['size_mb']:>7.1f}")
    return "\n".join(lines)


__all__ = ["Candidate", "CompareResult", "candidates_for", "compare", "markdown_table"]
