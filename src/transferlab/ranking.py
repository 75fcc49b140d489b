"""rank: which backbone will transfer best, in seconds, before any training; and ``--strategy auto``.

Both read frozen features from the cache (extracting them once if needed) and never train a network.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import runtime
from .analysis.advice import Advice, recommend
from .analysis.transferability import h_score, imagenet_confidence, knn_loo_accuracy, logme
from .backbones import DEFAULT_BACKBONE, get_backbone, list_backbones
from .data.images import ImageDataset
from .features import FeatureExtractor
from .progress import log


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
    cv_scores: dict[str, float]


def auto_select(train: ImageDataset, folds: int = 5, seed: int = 0) -> AutoChoice:
    """``--strategy auto``: measure, then choose.

    The rule of thumb (size x closeness to ImageNet, :func:`~transferlab.analysis.advice.recommend`) decides the
    family. For small data that is a classifier on frozen features, and the cheap candidates of that family (top
    features of every backbone, mid-layer features of the backbone LogME ranks first) are scored by stratified
    cross-validation on the training split alone; the best is chosen. For large data the rule's fine-tuning
    strategy is taken as it is.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    ranking = rank_backbones(train)
    main = next(r for r in ranking if r["backbone"] == DEFAULT_BACKBONE) if any(
        r["backbone"] == DEFAULT_BACKBONE for r in ranking) else ranking[0]
    advice = recommend(len(train), len(train.classes), main["imagenet_confidence"])
    if advice.strategy not in ("headless",):
        return AutoChoice(advice.strategy, ranking[0]["backbone"], advice.params, advice.reason, advice, {})
    y = train.y
    n_splits = max(2, min(folds, int(np.bincount(y).min())))
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    candidates = [(r["backbone"], "top") for r in ranking] + [(ranking[0]["backbone"], "mid")]
    scores: dict[str, float] = {}
    for backbone, layer in candidates:
        ex = FeatureExtractor(backbone, cache=runtime.get_cache(), progress=False)
        output = "features" if layer == "top" else "mid"
        res = ex.extract(train.paths, outputs=(output,))
        x, yy = res.arrays[output], y[res.ok]
        scores[f"{backbone}/{layer}"] = float(cross_val_score(
            LogisticRegression(C=1.0, max_iter=3000), x, yy, cv=cv).mean())
    best = max(scores, key=lambda k: (scores[k], -list(scores).index(k)))
    backbone, layer = best.split("/")
    reason = (f"{advice.reason} Chosen by {n_splits}-fold cross-validation on the training split among "
              f"{len(scores)} frozen-feature candidates: {backbone} with {layer}-layer features "
              f"({scores[best]:.3f}; runner-up {sorted(scores.values())[-2]:.3f}).")
    return AutoChoice("headless", backbone, {"layer": layer}, reason, advice, scores)


def rank(data: str | os.PathLike[str], backbones: list[str] | None = None, val_fraction: float = 0.2, seed: int = 0,
         eval_split: str | None = None) -> list[dict[str, Any]]:
    """Rank backbones on DATA's training split."""
    from .api import prepare_image_data

    train, _, report = prepare_image_data(data, DEFAULT_BACKBONE, val_fraction, seed, eval_split)
    for line in report.summary_lines():
        log(line)
    return rank_backbones(train, backbones)
