"""headless: a frozen pretrained network as a featurizer, and a scikit-learn classifier on its cached features.

The cheapest strategy and a strong baseline on small data close to ImageNet. ``classifier``: ``logreg``
(default; L2-regularised logistic regression), ``svm`` (linear SVM on standardised features; its probabilities are
softmax-scaled margins, not calibrated) or ``knn`` (cosine k-nearest neighbours). ``layer="mid"`` uses pooled
features of earlier stages, which the lectures advise for data far from the pretraining domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.heads import Head, KNNHead, LinearHead
from transferlab.strategies._features import LAYERS, cached_features
from transferlab.strategies.base import Strategy

CLASSIFIERS = ("logreg", "svm", "knn")


class Headless(Strategy):
    name = "headless"
    summary = "frozen backbone features + scikit-learn classifier (logreg/svm/knn)"

    def __init__(self, backbone: str = "efficientnet_lite0", classifier: str = "logreg", C: float = 1.0,  # noqa: N803
                 k: int = 5, layer: str = "top", seed: int = 0) -> None:
        self.backbone = backbone
        self.classifier = classifier
        self.C = C
        self.k = k
        self.layer = layer
        self.seed = seed

    def _validate(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise UserError(f"unknown classifier {self.classifier!r}; choose one of {', '.join(CLASSIFIERS)}")
        if self.layer not in LAYERS:
            raise UserError(f"unknown layer {self.layer!r}; choose one of {', '.join(LAYERS)}")
        if self.C <= 0:
            raise UserError(f"C must be > 0, got {self.C}")

    def fit_features(self, features: np.ndarray, y: np.ndarray, classes: list[str]) -> Headless:
        """Fit on features already extracted (rows aligned with ``y``)."""
        self._validate()
        self.classes_ = list(classes)
        n_classes = len(classes)
        if self.classifier == "logreg":
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=self.C, max_iter=5000, random_state=self.seed).fit(features, y)
            self.head_: Head = LinearHead.from_sklearn(clf.coef_, clf.intercept_)
        elif self.classifier == "svm":
            from sklearn.preprocessing import StandardScaler
            from sklearn.svm import LinearSVC

            scaler = StandardScaler().fit(features)
            clf = LinearSVC(C=self.C * 0.01, max_iter=20000, random_state=self.seed).fit(scaler.transform(features), y)
            self.head_ = LinearHead.from_sklearn(clf.coef_, clf.intercept_, scaler.mean_, scaler.scale_)
        else:
            self.head_ = KNNHead(features, y, n_classes, k=self.k)
        self.n_features_in_ = features.shape[1]
        return self

    def fit(self, X: Any, y: Any = None) -> Headless:  # noqa: N803
        self._validate()
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        features, ok = cached_features(X, self.backbone, self.layer, strict=False)
        return self.fit_features(features, labels[ok], classes)

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        self.check_is_fitted()
        return self.head_.predict_proba(features)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        features, _ = cached_features(X, self.backbone, self.layer, desc="features for prediction")
        return self.predict_proba_features(features)

    def save_weights_config(self) -> dict[str, Any]:
        """What a ``features+head`` predictor needs besides the head's own files."""
        return {"kind": "features+head", "backbone": self.backbone, "layer": self.layer,
                "feature_outputs": list(LAYERS[self.layer])}

    def save_weights(self, directory: Path) -> dict[str, Any]:
        self.check_is_fitted()
        self.head_.save(directory)
        return self.save_weights_config()
