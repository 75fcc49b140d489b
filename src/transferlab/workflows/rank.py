"""rank: which backbone will transfer best, in seconds, before any training; and ``--strategy auto``.

Both read frozen features from the cache (extracting them once if needed) and never train a network.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.analysis.advice import Advice, recommend
from transferlab.analysis.transferability import h_score, imagenet_confidence, knn_loo_accuracy, logme
from transferlab.backbones import DEFAULT_BACKBONE, get_backbone, list_backbones
from transferlab.data.images import ImageDataset
from transferlab.features.images import FeatureExtractor
from transferlab.progress import log


def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


def score_features(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Transferability scores of one feature matrix. LogME runs on standardised features, which makes it comparable
    across backbones whose features have different scales."""
    return {"logme": logme(standardize(features), labels), "h_score": h_score(features, labels),
            "knn_loo": knn_loo_accuracy(features, labels)}


def rank_backbones(train: ImageDataset, backbones: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per backbone: LogME (the ranking score), H-score, leave-one-out kNN accuracy, ImageNet-head
    confidence and the seconds the scores took; sorted best first."""
    names = backbones or [s.name for s in list_backbones("image")]
    labels = train.y
    rows = []
    for name in names:
        spec = get_backbone(name)
        ex = FeatureExtractor(spec, cache=runtime.get_cache(), progress=runtime.show_progress())
        res = ex.extract(train.paths, outputs=("features", "logits"), desc=f"features ({name})")
        y = labels[res.ok]
        t = time.perf_counter()
        scores = score_features(res.arrays["features"], y)
        rows.append({"backbone": name, **scores, "imagenet_confidence": imagenet_confidence(res.arrays["logits"]),
                     "feature_dim": spec.feature_dim, "score_seconds": time.perf_counter() - t})
    rows.sort(key=lambda r: -r["logme"])
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


@dataclass
class AutoChoice:
    strategy: str
    backbone: str
    params: dict[str, Any]
    reason: str
    advice: Advice
    scores: dict[str, float]  # what the choice rests on: LogME per image backbone, or CV macro-F1 per text candidate


def auto_select(train: ImageDataset) -> AutoChoice:
    """``--strategy auto``: measure, then choose.

    The rule of thumb (size x closeness to ImageNet, :func:`~transferlab.analysis.advice.recommend`) decides the
    strategy; ``rank`` (LogME on the cached top features of the training split: closed form, all of the data, no
    folds) decides the backbones. For small data: a classifier on the frozen top features of each of the two
    backbones ``rank`` puts first, probabilities averaged (``headless_ensemble``). For large data: fine-tuning of
    the first.

    Why not cross-validation on the training split, as this did before: with 150-250 images, 5-fold accuracy of
    the candidates disagreed with held-out accuracy (it picked the held-out winner on 1 of the 4 shared image
    sets, LogME's first backbone on 3; ``benchmarks/compare_bench.py``). Why two backbones: over 10 random re-splits
    of each of those sets the pair was level with LogME's first backbone alone on two and 1.5-2.2 points better on
    the other two (``compare_bench.py --resplits 10``). ``compare`` still tries mid-layer features and says when
    they win (negative transfer).
    """
    ranking = rank_backbones(train)
    main = next((r for r in ranking if r["backbone"] == DEFAULT_BACKBONE), ranking[0])
    advice = recommend(len(train), len(train.classes), main["imagenet_confidence"])
    first = ranking[0]
    scores = {r["backbone"]: float(r["logme"]) for r in ranking}
    if advice.strategy == "headless" and len(ranking) > 1:
        second = ranking[1]
        reason = (f"{advice.reason} Backbones: {first['backbone']} and {second['backbone']}, the two first by "
                  f"transferability on the training split (LogME {first['logme']:.3f} and {second['logme']:.3f}), "
                  "one classifier on each, probabilities averaged: on small data that is steadier than either alone.")
        return AutoChoice("headless_ensemble", f"{first['backbone']}+{second['backbone']}", {}, reason, advice,
                          scores)
    runner_up = (f"; runner-up {ranking[1]['backbone']} {ranking[1]['logme']:.3f}" if len(ranking) > 1 else "")
    reason = (f"{advice.reason} Backbone: {first['backbone']}, first by transferability on the training split "
              f"(LogME {first['logme']:.3f}{runner_up}).")
    return AutoChoice(advice.strategy, first["backbone"], dict(advice.params), reason, advice, scores)


def rank(data: str | os.PathLike[str], backbones: list[str] | None = None, val_fraction: float = 0.2, seed: int = 0,
         eval_split: str | None = None) -> list[dict[str, Any]]:
    """Rank backbones on DATA's training split."""
    from transferlab.workflows.train import prepare_image_data

    train, _, report = prepare_image_data(data, DEFAULT_BACKBONE, val_fraction, seed, eval_split)
    for line in report.summary_lines():
        log(line)
    return rank_backbones(train, backbones)
