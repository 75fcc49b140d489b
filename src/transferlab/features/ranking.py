"""Transferability of frozen features: which backbone (image network or text encoder) will transfer best to a
labelled set, from cached features, in seconds, with no training. Used by ``rank``, ``--strategy auto`` and the
``headless_ensemble`` strategy (which keeps the backbones it puts first)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.analysis.transferability import h_score, imagenet_confidence, knn_loo_accuracy, logme
from transferlab.backbones import get_backbone, list_backbones
from transferlab.errors import UserError

SCORE_SAMPLE = 4000  # text: rank scores and auto's cross-validation use at most this many training rows


def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


def score_features(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Transferability scores of one feature matrix. LogME runs on standardised features, which makes it comparable
    across backbones whose features have different scales."""
    return {"logme": logme(standardize(features), labels), "h_score": h_score(features, labels),
            "knn_loo": knn_loo_accuracy(features, labels)}


def sample(train: Any, limit: int, seed: int) -> Any:
    """At most ``limit`` rows, stratified, in a fixed order (all of them when there are fewer)."""
    if len(train) <= limit:
        return train
    from transferlab.data.images import stratified_split

    keep, _ = stratified_split(train.labels or [], 1 - limit / len(train), seed)
    sub = train.subset(sorted(keep))
    sub.classes = list(train.classes)
    return sub


def candidate_backbones(task: str, backbones: list[str] | None = None) -> list[str]:
    """The backbones to try: the given names (or, for text, folders from ``pretrain-text --method mlm``), else every
    registered backbone of the modality. An unknown name is an error before any work."""
    if not backbones:  # every installed one (mpnet is optional: its parts may not be installed)
        return [b.name for b in list_backbones(task) if b.is_installed()]
    for name in backbones:
        spec = get_backbone(name)
        if spec.modality != task:
            article = "an" if spec.modality[0] in "aeiou" else "a"
            raise UserError(f"--backbones {name}: {article} {spec.modality} backbone, but the data is {task}")
    return list(backbones)


TEXT_EMBED_BUDGET_S = 300.0  # compare/auto: an encoder expected to take longer than this to embed the data is left out
SPEED_TOKENS = 25  # the measured sentences/s are on sst2 test sentences, ~25 tokens each


def expected_embed_seconds(name: str, texts: list[str]) -> float | None:
    """Seconds to embed ``texts`` with text encoder ``name`` on a cold cache, from its measured speed on short
    sentences scaled by the texts' length in tokens (~1.3 per word, capped at 256), in bfloat16 on a CPU with bf16 units
    (as :class:`~transferlab.backbones.minilm.SentenceEncoder` embeds there), else in float32; None when never
    measured."""
    from transferlab._torch import native_bf16
    from transferlab.benchmarks_data import measured_speed

    speed = measured_speed(name, float32=not native_bf16())
    if not speed or not texts:
        return None
    tokens = min(256.0, 2 + 1.3 * float(np.mean([len(t.split()) for t in texts])))
    return len(texts) * max(1.0, tokens / SPEED_TOKENS) / speed


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def affordable_encoders(names: list[str], texts: list[str], budget_s: float = TEXT_EMBED_BUDGET_S
                        ) -> tuple[list[str], list[str]]:
    """The encoders among ``names`` expected to embed ``texts`` within ``budget_s`` (the fastest one always stays),
    in their order, and a note for each one left out."""
    expected = {n: expected_embed_seconds(n, texts) for n in names}
    kept = [n for n in names if expected[n] is None or expected[n] <= budget_s]
    if not kept and names:
        kept = [min(names, key=lambda n: expected[n] or 0.0)]
    notes = [f"{n} left out: embedding {len(texts)} texts would take ~{_duration(expected[n] or 0.0)} at its speed "
             f"on the project's 2 CPU cores (budget {_duration(budget_s)}; ask for it with --backbones {n})"
             for n in names if n not in kept]
    return kept, notes


# text encoders, strongest first, by logistic regression on frozen embeddings (sst2, 64 per class, mean of 5 draws:
# mpnet 0.871, MiniLM 0.729; ../shared/MODELS.md); GloVe is for topics and speed, never the stronger one
TEXT_ENCODERS_BY_STRENGTH = ("mpnet", "minilm")


def installed_text_encoders() -> list[str]:
    """The installed text encoders, strongest first (MiniLM ships with the project, so the list is never empty)."""
    return [n for n in TEXT_ENCODERS_BY_STRENGTH if get_backbone(n).is_installed()] or ["minilm"]


def strongest_affordable_encoder(texts: list[str], budget_s: float = TEXT_EMBED_BUDGET_S) -> tuple[str, str]:
    """The strongest installed text encoder expected to embed ``texts`` within ``budget_s`` (:func:`affordable_encoders`
    over the installed ones, strongest first), and why, naming the stronger ones left out."""
    installed = installed_text_encoders()
    name = affordable_encoders(installed, texts, budget_s)[0][0]
    skipped = installed[: installed.index(name)]
    if not skipped:
        seconds = expected_embed_seconds(name, texts)
        return name, (f"{name}: the strongest installed text encoder (expected ~{_duration(seconds or 0.0)} to embed "
                      f"{len(texts)} texts)")
    left_out = ", ".join(f"{n} ~{_duration(expected_embed_seconds(n, texts) or 0.0)}" for n in skipped)
    return name, (f"{name}: the stronger encoders would take more than {_duration(budget_s)} for {len(texts)} texts "
                  f"({left_out})")


def _label(name: str) -> str:
    """A pretrain-text folder is shown as what it adapts and where: ``minilm@reviews`` or ``vectors@reviews``."""
    if not Path(name).is_dir():
        return name
    kind = getattr(get_backbone(name), "kind", "transformer")
    return f"{'minilm' if kind == 'transformer' else 'vectors'}@{Path(name).name}"


def rank_backbones(train: Any, backbones: list[str] | None = None, seed: int = 0,
                   task: str | None = None) -> list[dict[str, Any]]:
    """One row per backbone: LogME (the ranking score), H-score, leave-one-out kNN accuracy, the ImageNet head's
    confidence (image backbones), how many training rows were scored and the seconds it took; best first."""
    from transferlab.features import extract_features

    task = task or ("text" if hasattr(train, "texts") else "image")
    data = sample(train, SCORE_SAMPLE, seed) if task == "text" else train  # image sets: every image, as ever
    items = list(data.texts) if task == "text" else list(data.paths)
    rows = []
    for name in candidate_backbones(task, backbones):
        spec = get_backbone(name)
        outputs = ("features", "logits") if task == "image" else ("features",)
        t = time.perf_counter()
        res = extract_features(name, items, outputs=outputs, desc=f"features ({_label(name)})")
        embed_s = time.perf_counter() - t
        y = data.y[res.ok]
        t = time.perf_counter()
        row = {"backbone": _label(name), **score_features(res.arrays["features"], y)}
        if "logits" in res.arrays:
            row["imagenet_confidence"] = imagenet_confidence(res.arrays["logits"])
        row.update({"feature_dim": int(res.arrays["features"].shape[1]) if res.ok else spec.feature_dim,
                    "scored_rows": len(y), "embed_seconds": embed_s, "score_seconds": time.perf_counter() - t})
        rows.append(row)
    rows.sort(key=lambda r: -r["logme"])
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows
