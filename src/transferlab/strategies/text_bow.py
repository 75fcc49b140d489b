"""bow (text): TF-IDF over word 1-3 grams (and optionally character n-grams) + logistic regression.

No pretrained model at all: fast, and hard to beat on topic-like tasks with a few thousand examples. The vocabulary
and IDF weights are saved as JSON + safetensors and the classifier as a linear head, so the saved model holds no
pickles. ``char_ngrams=5`` adds character 2-5 grams (robust to spelling variants; slower, larger). Side columns of
the data (``--feature-columns``) are standardised / one-hot encoded and appended to the TF-IDF features.
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import UserError
from transferlab.strategies._sparse_text import SparseTextLinear


class TextBow(SparseTextLinear):
    name = "bow"
    summary = "TF-IDF word n-grams (+ char n-grams) + logistic regression; no pretrained model"

    def __init__(self, word_ngrams: int = 3, char_ngrams: int = 0, min_df: int = 1,
                 max_features: int | None = 300_000, C: float = 10.0, seed: int = 0) -> None:  # noqa: N803
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.C = C
        self.seed = seed

    def _validate(self) -> None:
        if self.word_ngrams < 0 or self.char_ngrams < 0 or (self.word_ngrams == 0 and self.char_ngrams == 0):
            raise UserError("bow needs word_ngrams >= 1 or char_ngrams >= 2")
        if self.char_ngrams == 1:
            raise UserError("char_ngrams is the longest character n-gram (2 or more), or 0 for none")
        if self.C <= 0:
            raise UserError(f"C must be > 0, got {self.C}")

    def _make_featurizer(self) -> Any:  # noqa: ANN401 - a TfidfFeaturizer
        from transferlab.features.tfidf import TfidfFeaturizer

        return TfidfFeaturizer(self.word_ngrams, self.char_ngrams, self.min_df, self.max_features)
