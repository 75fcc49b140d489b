"""text_headless: frozen sentence embeddings + logistic regression: all-MiniLM-L6-v2 (mean-pooled, cached; the
default) or, with ``encoder=glove``, mean-pooled GloVe 6B 50-d word vectors (a fast option: ~100x quicker to embed,
good for topics, weak on sentiment).

The text counterpart of the image ``headless`` strategy (registry names are unique across modalities, so this one
is ``text_headless``; with ``--task text``, ``--strategy headless`` selects it). The embeddings are standardised and
the regularisation strength ``C`` is chosen by 3-fold cross-validation when ``C`` is None (the default). Side columns
of the data (``--feature-columns``) are encoded and appended to the embeddings before standardisation.
``backbone`` is None for the packaged MiniLM, or a folder written by ``transferlab pretrain-text --method mlm``
(the saved model then carries that body in ``transformer/``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.heads import LinearHead
from transferlab.strategies.base import Strategy

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


class TextHeadless(Strategy):
    name = "text_headless"
    modality = "text"
    summary = "frozen MiniLM sentence embeddings + logistic regression"
    uses_side_features = True  # --feature-columns: side columns joined to the features

    def __init__(self, C: float | None = None, max_length: int = 256, backbone: str | None = None,  # noqa: N803
                 encoder: str = "minilm", seed: int = 0) -> None:
        self.C = C
        self.encoder = encoder
        self.max_length = max_length
        self.backbone = backbone
        self.seed = seed

    def _body_folder(self) -> str | None:
        from transferlab.backbones import transformer_folder

        return transformer_folder(self.backbone) if self.backbone else None

    def _embed(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab.data.texts import texts_of
        from transferlab.features.text import text_encoder

        return text_encoder(self.encoder, self.max_length, self._body_folder()).embed(texts_of(X))

    def _features(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab.data.side_features import join_dense, side_matrix

        return join_dense(self._embed(X), side_matrix(getattr(self, "side_encoder_", None), X))

    def fit_features(self, features: np.ndarray, y: np.ndarray, classes: list[str]) -> TextHeadless:
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.preprocessing import StandardScaler

        if self.C is not None and self.C <= 0:
            raise UserError(f"C must be > 0, got {self.C}")
        scaler = StandardScaler().fit(features)
        z = scaler.transform(features)
        smallest = int(np.bincount(y).min())
        if self.C is None and smallest >= 3:
            with warnings.catch_warnings():  # scikit-learn 1.9 announces changes of defaults we do not rely on
                warnings.simplefilter("ignore", FutureWarning)
                clf = LogisticRegressionCV(Cs=list(C_GRID), cv=3, max_iter=3000, random_state=self.seed).fit(z, y)
            self.C_ = float(np.atleast_1d(clf.C_)[0])
        else:
            self.C_ = float(self.C if self.C is not None else 0.1)
            clf = LogisticRegression(C=self.C_, max_iter=3000, random_state=self.seed).fit(z, y)
        self.head_ = LinearHead.from_sklearn(clf.coef_, clf.intercept_, scaler.mean_, scaler.scale_)
        self.classes_ = list(classes)
        return self

    def fit(self, X: Any, y: Any = None) -> TextHeadless:  # noqa: N803
        from transferlab.data.side_features import fit_side_features

        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        self.side_encoder_ = fit_side_features(X)
        return self.fit_features(self._features(X), labels, classes)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        return self.head_.predict_proba(self._features(X))

    def save_weights(self, directory: Path) -> dict[str, Any]:
        self.check_is_fitted()
        self.head_.save(directory)
        from transferlab.backbones import get_backbone

        out: dict[str, Any] = {"kind": "text_embedding+head", "encoder": get_backbone(self.encoder).model_id,
                               "max_length": self.max_length}
        if self.backbone:
            from transferlab.backbones.folder import copy_transformer_backbone

            out["transformer"] = copy_transformer_backbone(self._body_folder(), directory / "transformer")
            out["encoder"] = str(self.backbone)
        if getattr(self, "side_encoder_", None) is not None:
            out["side_features"] = self.side_encoder_.save(directory)
        return out
