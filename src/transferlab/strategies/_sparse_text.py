"""What ``bow`` and ``text_hybrid`` share: sparse TF-IDF features of the texts (plus whatever a strategy stacks beside
them), the side columns (``--feature-columns``) after them, one logistic regression saved as a linear head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.heads import LinearHead, sparse_linear_proba
from transferlab.strategies.base import Strategy


class SparseTextLinear(Strategy):
    """Subclasses give ``_validate``, ``_make_featurizer`` and ``kind``; they may stack more blocks in
    ``_text_features``, choose C in ``_choose_c`` and add entries to the saved weights in ``_weights_info``."""

    modality = "text"
    uses_side_features = True  # --feature-columns: side columns joined to the features
    kind = "text_tfidf+head"

    def _validate(self) -> None:
        raise NotImplementedError

    def _make_featurizer(self) -> Any:  # noqa: ANN401 - a TfidfFeaturizer
        raise NotImplementedError

    def _validate_vocabulary(self) -> None:
        """The vocabulary's bounds, said in our words (scikit-learn's TfidfVectorizer would stop with its own error
        deep inside ``fit``): ``min_df`` a count >= 1, ``max_features`` >= 1 or null (no limit)."""
        if int(self.min_df) < 1:
            raise UserError(f"min_df (the fewest texts a word must appear in) must be >= 1, got {self.min_df}")
        if self.max_features is not None and int(self.max_features) < 1:
            raise UserError(f"max_features must be >= 1, or null for no limit, got {self.max_features}")

    def _text_features(self, texts: list[str]) -> Any:  # noqa: ANN401 - a scipy CSR matrix
        return self.featurizer_.transform(texts)

    def _choose_c(self, features: Any, labels: np.ndarray) -> float:  # noqa: ARG002
        return float(self.C)

    def _weights_info(self) -> dict[str, Any]:
        return {}

    def _fit_extra(self, features: Any, labels: np.ndarray, texts: list[str]) -> None:
        """A second model on the same features (text_hybrid: naive Bayes on their TF-IDF block), its probabilities
        blended in by ``_blend``."""

    def _blend(self, proba: np.ndarray, features: Any) -> np.ndarray:  # noqa: ARG002
        return proba

    def _save_extra(self, directory: Path) -> dict[str, Any]:  # noqa: ARG002
        return {}

    def fit(self, X: Any, y: Any = None) -> SparseTextLinear:  # noqa: N803
        from sklearn.linear_model import LogisticRegression

        from transferlab.data.side_features import fit_side_features, join_sparse, side_matrix
        from transferlab.data.texts import texts_of

        self._validate()
        self._validate_vocabulary()
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        texts = texts_of(X)
        self.featurizer_ = self._make_featurizer().fit(texts)
        self.side_encoder_ = fit_side_features(X)
        features = join_sparse(self._text_features(texts), side_matrix(self.side_encoder_, X))
        self.C_ = self._choose_c(features, labels)
        clf = LogisticRegression(C=self.C_, max_iter=2000, random_state=self.seed).fit(features, labels)
        self.head_ = LinearHead.from_sklearn(clf.coef_, clf.intercept_)
        self._fit_extra(features, labels, texts)
        self.classes_ = list(classes)
        self.n_features_in_ = int(features.shape[1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab.data.side_features import join_sparse, side_matrix
        from transferlab.data.texts import texts_of

        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        features = join_sparse(self._text_features(texts_of(X)), side_matrix(self.side_encoder_, X))
        return self._blend(sparse_linear_proba(self.head_, features), features)

    def save_weights(self, directory: Path) -> dict[str, Any]:
        self.check_is_fitted()
        self.featurizer_.save(directory)
        self.head_.save(directory)
        out: dict[str, Any] = {"kind": self.kind, "n_features": self.n_features_in_, **self._weights_info(),
                               **self._save_extra(directory)}
        if self.side_encoder_ is not None:
            out["side_features"] = self.side_encoder_.save(directory)
        return out
