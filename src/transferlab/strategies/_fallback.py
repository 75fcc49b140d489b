"""LP-FT's probe, for image networks and text transformers alike: the new head starts as a logistic-regression probe
on the frozen features (:func:`set_probe_head`), and that probe is the fallback: the fine-tuned model replaces it
only when, on the held-out part of the training split, it is significantly better image by image (or text by text)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["SIGNIFICANCE", "better", "can_be_beaten", "fixed_and_broken", "mcnemar_p", "mistakes_needed",
           "set_probe_head", "verdict"]

SIGNIFICANCE = 0.05  # McNemar's exact test, one-sided: how sure the held-out images must make us


def mcnemar_p(fixed: int, broken: int) -> float:
    """One-sided exact McNemar p-value: the chance of ``fixed`` or more of the ``fixed + broken`` images on which
    two models disagree going the new model's way if both were equally good (a fair coin per image)."""
    n = fixed + broken
    return float(sum(math.comb(n, k) for k in range(fixed, n + 1)) / 2**n) if n else 1.0


def better(probe: dict[str, Any], tuned: dict[str, Any]) -> bool:
    """Whether the probe is kept over the fine-tuned network: unless, on the held-out training images, the
    fine-tuned network fixes significantly more of the probe's mistakes than it makes new ones (McNemar's exact
    test, one-sided, at :data:`SIGNIFICANCE`).

    The measure is the one users are scored by, accuracy, compared image by image. The probe is the simpler model,
    exactly what ``headless`` fits, so it is the null hypothesis: fine-tuning must show it is better, not merely
    score higher on a few dozen images. With 36 held-out images that means fixing at least 5 more than it breaks
    when it breaks none (5-0, 7-1, 9-2, ...). Measured before this rule: winning by 2 images of 36 (5.6 points)
    turned into losing 3 of 153 on hymenoptera val/, and a lower cross-entropy with the same answers only meant more
    confidence (0.941 vs 0.954 on val/)."""
    fixed, broken = fixed_and_broken(probe, tuned)
    return not mcnemar_p(fixed, broken) < SIGNIFICANCE


def mistakes_needed() -> int:
    """The fewest held-out mistakes a probe must make for a fine-tuned model to be able to beat it at all: fixing
    every one of them and breaking nothing must be significant (5 at 5%)."""
    return next(m for m in range(1, 64) if mcnemar_p(m, 0) < SIGNIFICANCE)


def can_be_beaten(probe_errors: Any) -> bool:
    """Whether any fine-tuned model could pass :func:`better` against a probe with these held-out errors (0/1 per
    item). When none could, the probe is the answer whatever fine-tuning does, so the network strategies skip
    fine-tuning (the same model, without the minutes): a probe that misses 2 of 37 held-out images is kept even
    against a network that gets all 37 right."""
    return int(np.sum(probe_errors)) >= mistakes_needed()


def verdict(probe_errors: Any, tuned_errors: Any, items: str, model: str) -> tuple[str, dict[str, Any], str]:
    """Which model a network strategy keeps (``"probe"`` or ``"fine-tuned"``), the check for ``history.json`` and
    the line to print, from the probe's and the fine-tuned ``model``'s errors (0/1 per held-out ``items``);
    ``tuned_errors`` None: fine-tuning was skipped because the probe could not be beaten (:func:`can_be_beaten`)."""
    n, missed = len(probe_errors), int(np.sum(probe_errors))
    check: dict[str, Any] = {"held_out": n, "probe_accuracy": 1 - missed / max(1, n)}
    if tuned_errors is None:
        line = (f"the probe misses only {missed} of the {n} held-out training {items}, so no fine-tuned {model} "
                f"could be significantly better (it would have to fix at least {mistakes_needed()}): fine-tuning "
                "skipped (val_fraction=0 or head_init=random fine-tunes without the check)")
        return "probe", {**check, "fine_tuned_accuracy": None, "fixed": 0, "broken": 0, "p_value": None,
                         "kept": "probe", "skipped": line}, line
    fixed, broken = fixed_and_broken({"errors": probe_errors}, {"errors": tuned_errors})
    kept = "probe" if better({"errors": probe_errors}, {"errors": tuned_errors}) else "fine-tuned"
    check.update(fine_tuned_accuracy=1 - float(np.mean(tuned_errors)), fixed=fixed, broken=broken,
                 p_value=mcnemar_p(fixed, broken), kept=kept)
    line = (f"on the {n} held-out training {items} the fine-tuned {model} got {check['fine_tuned_accuracy']:.3f} "
            f"right, the probe {check['probe_accuracy']:.3f}: fine-tuning fixed {fixed} and broke {broken} "
            f"(McNemar p = {check['p_value']:.3f}, needs < {SIGNIFICANCE})")
    return kept, check, line


def fixed_and_broken(probe: dict[str, Any], tuned: dict[str, Any]) -> tuple[int, int]:
    """How many held-out images the fine-tuned network gets right that the probe got wrong, and the reverse."""
    diff = np.asarray(tuned["errors"], np.int64) - np.asarray(probe["errors"], np.int64)
    return int((diff < 0).sum()), int((diff > 0).sum())


def set_probe_head(head: Any, features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> None:
    """``head`` (a ``torch.nn.Linear`` of ``n_classes`` outputs) becomes a logistic-regression probe (C=1) fitted on
    ``features``: binary problems become two softmax rows, and a class absent from ``labels`` stays unlikely."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from transferlab.heads import LinearHead

    clf = LogisticRegression(C=1.0, max_iter=5000, random_state=seed).fit(features, labels)
    probe = LinearHead.from_sklearn(clf.coef_, clf.intercept_)  # binary models become two softmax rows
    weight = np.zeros((n_classes, probe.weight.shape[1]), np.float32)
    bias = np.full(n_classes, -10.0, np.float32)  # a class absent from this part of train stays unlikely
    weight[clf.classes_] = probe.weight
    bias[clf.classes_] = probe.bias
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
