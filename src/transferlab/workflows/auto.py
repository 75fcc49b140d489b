"""``--strategy auto``: measure the data, choose, say why; one version for every modality.

1. Measure the facts the rules of thumb need (:func:`measure`): size and classes; for images the closeness to
   ImageNet (the default backbone's own head) and the transferability of every backbone (``rank``: LogME on the
   cached top features of the training split: closed form, all of the data, no folds); for text the examples in
   the smallest class and the length of the texts.
2. The rule of thumb turns the facts into advice (:mod:`transferlab.analysis.advice`, pure functions).
3. When the advice is to measure (text between few-shot and plenty, or fine-tuning that may not be worth
   minutes), the cheap candidates are cross-validated on the training split and the best is taken.
4. The backbone: images take the ones ``rank`` puts first. For small image data the choice is a classifier on the
   frozen top features of each of the two first backbones, probabilities averaged (``headless_ensemble``): over 10
   random re-splits of the four shared image sets that pair was level with LogME's first backbone alone on two and
   1.5-2.2 points better on the other two (``benchmarks/compare_bench.py --resplits 10``). Why not cross-validation
   for images: with 150-250 images, 5-fold accuracy disagreed with held-out accuracy (it picked the held-out winner
   on 1 of the 4 shared sets, LogME's first backbone on 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.analysis.advice import FEW_SHOT_PER_CLASS, Advice, recommend, recommend_text
from transferlab.backbones import DEFAULT_BACKBONE
from transferlab.errors import DataError
from transferlab.features.ranking import SCORE_SAMPLE, installed_text_encoders, rank_backbones, sample
from transferlab.progress import progress_bar
from transferlab.workflows.common import build_strategy

CHEAP_CANDIDATES: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "text": (("bow", {}), ("text_headless", {}), ("text_hybrid", {})),
    "image": (),
}
CHEAP_IS_ENOUGH = 0.97  # cross-validated macro-F1 of a cheap classifier from which fine-tuning is not worth minutes


@dataclass
class AutoChoice:
    strategy: str
    backbone: str
    params: dict[str, Any]
    reason: str
    advice: Advice
    scores: dict[str, float]  # what the choice rests on: LogME per image backbone, or CV macro-F1 per candidate
    scores_name: str = "logme"

    def to_metrics(self) -> dict[str, Any]:
        """What ``metrics.json`` keeps of the choice."""
        return {"strategy": self.strategy, "backbone": self.backbone, "params": dict(self.params),
                "reason": self.reason, self.scores_name: self.scores, "facts": self.advice.facts}


def _words_p90(texts: list[str]) -> float:
    return float(np.percentile([len(t.split()) for t in texts], 90)) if texts else 0.0


def advise(train: Any, task: str, ranking: list[dict[str, Any]] | None = None) -> Advice:
    """Measure the facts the rule of thumb needs and apply it. Images: size, classes and the default backbone's
    ImageNet-head confidence (from ``ranking`` when given, else from the cached logits); text: size, classes,
    examples in the smallest class, length of the texts, side columns."""
    if task == "text":
        from transferlab.backbones import fewshot_text_body, finetuned_text_body

        counts = np.bincount(train.y, minlength=len(train.classes))
        if int(counts.min()) <= FEW_SHOT_PER_CLASS:  # few-shot: a few thousand pairs at most, mpnet where installed
            body, top, why = fewshot_text_body()
        else:
            body, top, why = finetuned_text_body()
        return recommend_text(len(train), len(train.classes), int(counts.min()), _words_p90(train.texts),
                              bool(train.features), body, why, top)
    rows = {r["backbone"]: r for r in ranking or []}
    if DEFAULT_BACKBONE in rows:
        confidence = rows[DEFAULT_BACKBONE]["imagenet_confidence"]
    else:
        from transferlab.analysis.transferability import imagenet_confidence
        from transferlab.features import extract_features

        logits = extract_features(DEFAULT_BACKBONE, train.paths, outputs=("logits",),
                                  desc="measuring domain").arrays["logits"]
        confidence = imagenet_confidence(logits)
    return recommend(len(train), len(train.classes), confidence)


def candidate_label(name: str, params: dict[str, Any]) -> str:
    """``text_headless`` or ``text_headless[encoder=mpnet]``: how a candidate shows in reasons and scores."""
    return name + (f"[{','.join(f'{k}={v}' for k, v in sorted(params.items()))}]" if params else "")


def cross_validate(train: Any, task: str, candidates: tuple[tuple[str, dict[str, Any]], ...], seed: int,
                   folds: int) -> tuple[dict[str, float], dict[str, str], int]:
    """k-fold macro-F1 (accuracy on balanced classes, and fair to the small ones otherwise) of each candidate on (a
    sample of) ``train``; the candidates that cannot use this data, with the reason; k."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    data = sample(train, SCORE_SAMPLE, seed)
    y = data.y
    cv = StratifiedKFold(n_splits=max(2, min(folds, int(np.bincount(y).min()))), shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    unusable: dict[str, str] = {}
    bar = progress_bar(total=len(candidates) * cv.get_n_splits(), desc="auto: cross-validation", unit="fit",
                       enabled=runtime.show_progress())
    for name, params in candidates:
        label = candidate_label(name, params)
        f1s = []
        try:
            for tr, te in cv.split(np.zeros(len(y)), y):
                part, held = data.subset(tr.tolist()), data.subset(te.tolist())
                part.classes = held.classes = list(data.classes)
                model = build_strategy(name, task, None, params, seed).fit(part)
                f1s.append(float(f1_score(held.y, model.predict_proba(held).argmax(1), average="macro")))
                bar.update(1)
        except DataError as e:  # this candidate cannot use this data; the others may
            unusable[label] = str(e)
            continue
        scores[label] = float(np.mean(f1s))
    bar.close()
    if not scores:
        raise DataError("no strategy could be fitted to this data: " + "; ".join(unusable.values()))
    return scores, unusable, cv.get_n_splits()


FAST_ENCODER_BUDGET_S = 60.0  # no --strategy: a slower encoder joins only if it embeds the training texts this fast,
FAST_ENCODER_FACTOR = 2.0  # and within this many times MiniLM's expected time (fast_encoder_budget)
# --strategy auto where the advice is to measure: the frozen classifiers *are* the answer, so the stronger encoder may
# take as long as auto's fine-tuning takes elsewhere (sst2 or ag_news: ~15-25 min with mpnet on a CPU with bf16 units)
MEASURE_ENCODER_BUDGET_S = 900.0


def fast_encoder_budget(texts: list[str]) -> float:
    """Seconds a slower text encoder may take to embed ``texts`` with no ``--strategy``: at most
    :data:`FAST_ENCODER_BUDGET_S`, and at most :data:`FAST_ENCODER_FACTOR` times MiniLM's expected time. The default
    must stay within 3x the wall time of ``text_headless`` (MiniLM: embed, fit): MiniLM's own pass is the first of
    the three, so another encoder may add about two more. mpnet embeds 4-7x slower than MiniLM on any CPU measured
    (backbone_speed.json on sentences; 6.7x on newsgroups20's posts), so it stays out of the default;
    ``--strategy auto`` and ``compare`` let it in."""
    from transferlab.features.ranking import expected_embed_seconds

    minilm = expected_embed_seconds("minilm", texts)
    return FAST_ENCODER_BUDGET_S if not minilm else min(FAST_ENCODER_BUDGET_S, FAST_ENCODER_FACTOR * minilm)


def text_candidates(train: Any, budget_s: float | None = None) -> tuple[tuple[tuple[str, dict[str, Any]], ...], str]:
    """The cheap text candidates, with frozen embeddings of the strongest installed encoder the data can afford
    (mpnet when installed and the training texts embed within ``budget_s``: alone and beside TF-IDF), and why."""
    from transferlab.features.ranking import TEXT_EMBED_BUDGET_S, strongest_affordable_encoder

    encoder, why = strongest_affordable_encoder(list(train.texts),
                                               TEXT_EMBED_BUDGET_S if budget_s is None else budget_s)
    extra = (("text_headless", {"encoder": encoder}), ("text_hybrid", {"encoder": encoder})) \
        if encoder != "minilm" else ()
    return CHEAP_CANDIDATES["text"] + extra, why


def auto_select(train: Any, task: str | None = None, seed: int = 0, folds: int = 3, fast: bool = False
                ) -> AutoChoice:
    """``--strategy auto``: measure, advise, and where the advice says so, cross-validate the cheap candidates
    (see the module docstring).

    ``fast`` (what ``train`` does with no ``--strategy``): restricted to what takes seconds. Images: a classifier on
    the frozen top features of the backbone(s) ``rank`` puts first (where the advice is fine-tuning, the frozen
    choice is kept and the advice printed). Text: the cheap candidates, cross-validated, whatever the size."""
    task = task or ("text" if hasattr(train, "texts") else "image")
    ranking = rank_backbones(train, seed=seed, task=task) if task == "image" else []
    advice = advise(train, task, ranking)
    logme = {r["backbone"]: float(r["logme"]) for r in ranking}
    if task == "image" and fast and advice.strategy != "headless":
        slow = advice
        advice = Advice("headless", {"layer": "top"}, f"{slow.reason} That takes minutes: with no --strategy a "
                        "frozen network is trained now (seconds); `--strategy auto` follows the advice.", slow.facts)
    if task == "image":
        first = ranking[0]
        if advice.strategy == "headless" and len(ranking) > 1:
            second = ranking[1]
            reason = (f"{advice.reason} Backbones: {first['backbone']} and {second['backbone']}, the two first by "
                      f"transferability on the training split (LogME {first['logme']:.3f} and "
                      f"{second['logme']:.3f}), one classifier on each, probabilities averaged: on small data that "
                      "is steadier than either alone.")
            return AutoChoice("headless_ensemble", f"{first['backbone']}+{second['backbone']}", {}, reason, advice,
                              logme)
        runner_up = f"; runner-up {ranking[1]['backbone']} {ranking[1]['logme']:.3f}" if len(ranking) > 1 else ""
        reason = (f"{advice.reason} Backbone: {first['backbone']}, first by transferability on the training split "
                  f"(LogME {first['logme']:.3f}{runner_up}).")
        return AutoChoice(advice.strategy, first["backbone"], dict(advice.params), reason, advice, logme)
    if fast and advice.strategy != "measure":
        slow = advice
        advice = Advice("measure", {}, f"{slow.reason} That takes minutes: with no --strategy the cheap classifiers "
                        f"are measured instead (`--strategy auto` follows the advice).", slow.facts)
    if advice.strategy not in ("measure", "text_finetune"):
        return AutoChoice(advice.strategy, str(advice.params.get("backbone", "minilm")), dict(advice.params),
                          advice.reason, advice, {}, "cv_scores")
    budget = fast_encoder_budget(list(train.texts)) if fast else \
        MEASURE_ENCODER_BUDGET_S if advice.strategy == "measure" else None
    candidates, encoder_why = text_candidates(train, budget)
    scores, unusable, k = cross_validate(train, task, candidates, seed, folds)
    best = max(scores, key=lambda name: (scores[name], -list(scores).index(name)))
    best_name, best_params = next((n, p) for n, p in candidates if candidate_label(n, p) == best)
    others = ", ".join([f"{name} {v:.3f}" for name, v in scores.items() if name != best]
                       + [f"{name} not usable: {why}" for name, why in unusable.items()])
    how = f"{k}-fold cross-validation on the training split"
    if advice.strategy == "text_finetune":
        if scores[best] < CHEAP_IS_ENOUGH:
            reason = f"{advice.reason} The cheap classifiers leave room ({how}: {best} {scores[best]:.3f}; {others})."
            body = str(advice.params.get("backbone", "minilm"))
            return AutoChoice("text_finetune", body, dict(advice.params), reason, advice, scores, "cv_scores")
        reason = (f"{advice.reason} But {best} already reaches macro-F1 {scores[best]:.3f} in {how} ({others}): "
                  f"fine-tuning has at most {100 * (1 - scores[best]):.1f} points left to win, so {best} is chosen "
                  "(seconds, not minutes).")
    else:
        reason = f"{advice.reason} {how} chose {best} ({scores[best]:.3f}; {others})."
    if len(candidates) > len(CHEAP_CANDIDATES["text"]):
        reason += f" Encoders: minilm and {encoder_why}."
    elif fast and installed_text_encoders() != ["minilm"]:  # a stronger encoder is installed and was left out
        reason += (f" Encoders: {encoder_why}; with no --strategy another encoder may take at most "
                   f"{FAST_ENCODER_FACTOR:g}x MiniLM's time (`--strategy auto` lets it in).")
    encoder = str(best_params.get("encoder", "minilm"))
    return AutoChoice(best_name, encoder, dict(best_params), reason, Advice(best_name, dict(best_params), reason,
                                                                            advice.facts), scores, "cv_scores")
