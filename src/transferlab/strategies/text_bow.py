"""bow (text): TF-IDF over word 1-3 grams (and optionally character n-grams) + logistic regression.

No pretrained model at all: fast, and hard to beat on topic-like tasks with a few thousand examples. The vocabulary
and IDF weights are saved as JSON + safetensors and the classifier as a linear head, so the saved model holds no
pickles. ``char_ngrams=5`` adds character 2-5 grams (robust to spelling variants; slower, larger). Side columns of
the data (``--feature-columns``) are standardised / one-hot encoded and appended to the TF-IDF features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..heads import LinearHead
from .base import Strategy


class TextBow(Strategy):
    name = "bow"
    modality = "text"
    summary = "TF-IDF word n-grams (+ char n-grams) + logistic regression; no pretrained model"
    uses_side_features = True  # --feature-columns: side columns joined to the features

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

    def fit(self, X: Any, y: Any = None) -> TextBow:  # noqa: N803
        from sklearn.linear_model import LogisticRegression

        from ..text.data import texts_of
        from ..text.side_features import fit_side_features, join_sparse, side_matrix
        from ..text.tfidf import TfidfFeaturizer

        self._validate()
        labels, classes = self.labels_of(X, y)
        texts = texts_of(X)
        self.featurizer_ = TfidfFeaturizer(self.word_ngrams, self.char_ngrams, self.min_df, self.max_features)
        self.side_encoder_ = fit_side_features(X)
        features = join_sparse(self.featurizer_.fit(texts).transform(texts), side_matrix(self.side_encoder_, X))
        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(features, labels)
        self.head_ = LinearHead.from_sklearn(clf.coef_, clf.intercept_)
        self.classes_ = list(classes)
        self.n_features_in_ = int(features.shape[1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        from ..text.data import texts_of
        from ..text.predictors import sparse_linear_proba
        from ..text.side_features import join_sparse, side_matrix

        self.check_is_fitted()
        side = side_matrix(self.side_encoder_, X)
        return sparse_linear_proba(self.head_, join_sparse(self.featurizer_.transform(texts_of(X)), side))

    def save_weights(self, directory: Path) -> dict[str, Any]:
        self.check_is_fitted()
        self.featurizer_.save(directory)
        self.head_.save(directory)
        out: dict[str, Any] = {"kind": "text_tfidf+head", "n_features": self.n_features_in_}
        if self.side_encoder_ is not None:
            out["side_features"] = self.side_encoder_.save(directory)
        return out
