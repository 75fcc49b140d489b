"""text_zeroshot: no training examples; each class is described as "This text is about {label}." and a text goes
to the class whose description's MiniLM embedding is nearest (cosine).

There is no NLI model offline, so this is embedding similarity. ``fit`` only reads the class names (from the
dataset, or the ``classes`` parameter); labelled rows are ignored. Label names are made readable first
(``comp.sys.mac.hardware`` -> "comp sys mac hardware", ``Sci/Tech`` -> "Sci / Tech"). ``scale`` turns cosine
similarities into probabilities (softmax of ``scale * cos``). The saved model is a linear head whose rows are the
description embeddings, so it predicts like any other embedding model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.heads import LinearHead
from transferlab.strategies.base import Strategy


def readable_label(label: str) -> str:
    text = re.sub(r"[._\-]+", " ", label)
    text = re.sub(r"\s*/\s*", " / ", text)
    return re.sub(r"\s+", " ", text).strip()


class TextZeroShot(Strategy):
    name = "text_zeroshot"
    modality = "text"
    summary = ("no training: nearest class description ('This text is about {label}.') by sentence embedding "
               "(MiniLM; encoder=mpnet)")

    def __init__(self, template: str = "This text is about {label}.", classes: list[str] | None = None,
                 descriptions: dict[str, str] | None = None, scale: float = 30.0, max_length: int = 256,
                 encoder: str = "minilm", seed: int = 0) -> None:
        self.encoder = encoder
        self.template = template
        self.classes = classes
        self.descriptions = descriptions
        self.scale = scale
        self.max_length = max_length
        self.seed = seed

    def describe(self, label: str) -> str:
        if self.descriptions and label in self.descriptions:
            return self.descriptions[label]
        if "{label}" not in self.template:
            raise UserError("template must contain {label}")
        return self.template.replace("{label}", readable_label(label))

    def fit(self, X: Any = None, y: Any = None) -> TextZeroShot:  # noqa: N803
        from transferlab.features.text import text_encoder

        X, y = self._as_dataset(X, y)  # noqa: N806
        classes = list(self.classes) if self.classes else list(getattr(X, "classes", None) or sorted(set(y or [])))
        if len(classes) < 2:
            raise UserError("zero-shot classification needs at least two class names")
        self.descriptions_ = [self.describe(c) for c in classes]
        vectors = text_encoder(self.encoder, self.max_length).embed(self.descriptions_)
        self.head_ = LinearHead(vectors * self.scale, np.zeros(len(classes), np.float32))
        self.classes_ = classes
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab.data.texts import texts_of
        from transferlab.features.text import text_encoder

        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        return self.head_.predict_proba(text_encoder(self.encoder, self.max_length).embed(texts_of(X)))

    def save_weights(self, directory: Path) -> dict[str, Any]:
        self.check_is_fitted()
        self.head_.save(directory)
        from transferlab.backbones import get_backbone

        return {"kind": "text_embedding+head", "encoder": get_backbone(self.encoder).model_id,
                "max_length": self.max_length, "descriptions": self.descriptions_}
