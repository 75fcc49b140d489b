"""Which strategy to use, and when transfer will not help: the lectures' rule of thumb (dataset size x similarity
to the source domain), answered with measurements on the user's data.

- :func:`recommend` (images) and :func:`recommend_text` turn measured facts (size, classes, closeness to ImageNet;
  examples in the smallest class, text length) into a recommendation with a reason.
- :func:`negative_transfer_warning` reads a compare leaderboard: when training from scratch, or lower-level
  features, beat the pretrained top features, the pretrained representation is not helping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ImageNet head confidence (mean top-1 softmax) above this: photos of objects like ImageNet's
CLOSE_TO_IMAGENET = 0.45
LARGE_PER_CLASS = 500
FEW_SHOT_PER_CLASS = 64  # text: at most this many examples in the smallest class: few-shot
FINETUNE_PER_CLASS = 500  # text: at least this many in the smallest class, and short texts: fine-tune MiniLM
SHORT_TEXT_WORDS = 80  # 90th percentile of words per text at most this: "short" (MiniLM sees it all at 128 tokens)


@dataclass
class Advice:
    strategy: str
    params: dict[str, Any]
    reason: str
    facts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "params": self.params, "reason": self.reason, "facts": self.facts}


def recommend(n_train: int, n_classes: int, imagenet_confidence: float) -> Advice:
    """The rule of thumb, with the measured numbers in the sentence."""
    per_class = n_train / max(n_classes, 1)
    close = imagenet_confidence >= CLOSE_TO_IMAGENET
    facts = {"n_train": n_train, "n_classes": n_classes, "per_class": round(per_class, 1),
             "imagenet_confidence": round(imagenet_confidence, 3), "close_to_imagenet": close}
    where = (f"{n_train} training images in {n_classes} classes (~{per_class:.0f} per class); "
             f"the ImageNet head is {imagenet_confidence:.0%} confident on them on average, so the data is "
             f"{'close to' if close else 'far from'} the pretraining domain")
    if per_class < LARGE_PER_CLASS:
        if close:
            return Advice("headless", {"layer": "top"}, f"{where}: with this little data a linear classifier on "
                          "frozen top-layer features is the safest choice; fine-tuning would mostly overfit.", facts)
        return Advice("headless", {"layer": "top"}, f"{where}: small data far from ImageNet: keep the network frozen "
                      "(fine-tuning would overfit); lower-level features may transfer better than the top ones: "
                      "`transferlab compare` tries both and warns when they win.", facts)
    if close:
        return Advice("finetune_top", {"n_groups": 2}, f"{where}: enough data to fine-tune the top layer groups "
                      "with a small learning rate.", facts)
    return Advice("gradual_unfreeze", {}, f"{where}: plenty of data far from ImageNet: unfreeze gradually with "
                  "discriminative learning rates so the whole network adapts.", facts)


def finetune_params(body: str, max_length: int, train_layers: int | None = None) -> dict[str, Any]:
    """``text_finetune``'s parameters for a body: MiniLM 3 epochs in float32; mpnet 2 epochs, in bf16 autocast where
    the CPU has bf16 matrix units (~3.5x MiniLM's time per epoch, so 2 epochs cost what ~7 of MiniLM do; 2-3 epochs
    at 5e-5 is the usual recipe for a base-size body, BERT's GLUE runs), else only its top ``train_layers`` in
    float32 (on the kept outputs of the layers below: ~3x faster per step than the whole body in float32)."""
    if body == "minilm":
        return {"max_length": max_length, "epochs": 3}
    if train_layers is not None:
        return {"max_length": max_length, "epochs": 2, "backbone": body, "train_layers": int(train_layers)}
    return {"max_length": max_length, "epochs": 2, "backbone": body, "bf16": True}


def recommend_text(n_train: int, n_classes: int, smallest_class: int, words_p90: float,
                   has_side_columns: bool = False, body: str = "minilm", body_reason: str = "",
                   train_layers: int | None = None) -> Advice:
    """The text rule of thumb, from measured facts: examples in the smallest class and the length of the texts
    (and whether side columns need a classifier head). ``measure`` means: cross-validate the cheap classifiers.
    ``body`` is the transformer to fine-tune (or tune on pairs, few-shot) where that is the advice (``body_reason``:
    why that one; ``train_layers``: how many of its top layers train, None for all)."""
    smallest, p90 = smallest_class, words_p90
    facts = {"n_train": n_train, "n_classes": n_classes, "smallest_class": smallest, "words_p90": round(p90, 1)}
    where = (f"{n_train} training texts in {n_classes} classes (smallest class: {smallest}); 90% of "
             f"the texts have at most {p90:.0f} words")
    if smallest <= FEW_SHOT_PER_CLASS:
        params: dict[str, Any] = {} if body == "minilm" else {"backbone": body}
        if train_layers is not None:
            params["train_layers"] = int(train_layers)
        why = f" ({body_reason})" if body_reason else ""
        return Advice("text_fewshot", params, f"{where}: few examples per class, so contrastive fine-tuning of the "
                      f"sentence encoder {body}{why} on pairs of them (SetFit) is the best bet; on sst2 with 8 per "
                      f"class it scores {'0.87' if body == 'mpnet' else '0.75'} where frozen MiniLM embeddings score "
                      "0.63 (minutes).", facts)
    if smallest >= FINETUNE_PER_CLASS and p90 <= SHORT_TEXT_WORDS and has_side_columns:
        return Advice("measure", {}, f"{where}: fine-tuning would suit this much text, but it has no classifier "
                      "head to join the side columns to, so the classifiers that have one are measured.", facts)
    if smallest >= FINETUNE_PER_CLASS and p90 <= SHORT_TEXT_WORDS:
        params = finetune_params(body, 64 if p90 <= 40 else 128, train_layers)
        why = f" ({body_reason})" if body_reason else ""
        span = f"its top {train_layers} layers" if train_layers else "end to end"
        return Advice("text_finetune", params, f"{where}: enough short texts to fine-tune {body}{why} {span} "
                      f"(max_length {params['max_length']}, {params['epochs']} epochs"
                      f"{', bf16' if params.get('bf16') else ''}), which beats frozen embeddings by 2-6 points on "
                      "sst2 and ag_news; expect minutes on a CPU.", facts)
    return Advice("measure", {}, f"{where}: between few-shot and plenty, the cheap classifiers on words and frozen "
                  "embeddings (bow, text_headless, text_hybrid) fit best; which of them is measured (`compare`, or "
                  "cross-validation under --strategy auto).", facts)


def negative_transfer_warning(rows: list[dict[str, Any]], task: str = "image") -> str | None:
    """A warning when less pretraining beat more: images, ``from_scratch`` or mid-level features beating the
    pretrained top features; text, bag-of-words (no pretraining at all) beating every pretrained encoder."""
    if task == "text":
        return _text_negative_transfer(rows)

    def best(pred) -> dict[str, Any] | None:  # noqa: ANN001
        chosen = [r for r in rows if pred(r)]
        return max(chosen, key=lambda r: r["accuracy_mean"]) if chosen else None

    top = best(lambda r: r["strategy"] in ("headless", "frozen_head") and r.get("layer", "top") == "top")
    if top is None:
        return None
    for label, other in (("training from scratch", best(lambda r: r["strategy"] == "from_scratch")),
                         ("lower-level (mid-layer) features", best(lambda r: r.get("layer") == "mid"))):
        if other is not None and other["accuracy_mean"] > top["accuracy_mean"] + 0.005:
            return (f"negative transfer: {label} ({other['accuracy_mean']:.3f}) beat the pretrained top-layer "
                    f"features ({top['accuracy_mean']:.3f} with {top['strategy']} on {top['backbone']}); the "
                    "pretrained representation does not suit this data well")
    return None


def _text_negative_transfer(rows: list[dict[str, Any]]) -> str | None:
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

