"""Which strategy to use, and when transfer will not help: the lectures' rule of thumb (dataset size x similarity
to the source domain), answered with measurements on the user's data.

- :func:`recommend` turns measured facts (size, classes, closeness to ImageNet) into a recommendation with a reason.
- :func:`negative_transfer_warning` reads a compare leaderboard: when training from scratch, or lower-level
  features, beat the pretrained top features, the pretrained representation is not helping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ImageNet head confidence (mean top-1 softmax) above this: photos of objects like ImageNet's
CLOSE_TO_IMAGENET = 0.45
LARGE_PER_CLASS = 500


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


def negative_transfer_warning(rows: list[dict[str, Any]]) -> str | None:
    """A warning when ``from_scratch`` or mid-level features beat the pretrained top features on the same backbone."""
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
