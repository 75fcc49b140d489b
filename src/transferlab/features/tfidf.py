"""TF-IDF features saved as plain data: the vocabulary in JSON, the IDF weights in safetensors (no pickles).

A loaded featurizer rebuilds scikit-learn's ``TfidfVectorizer`` from those arrays and gives exactly the training-time
features. Word n-grams (default 1-3) and, optionally, character n-grams within word boundaries are stacked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

TOKEN_PATTERN = r"(?u)\b\w+\b|[!?]"  # keep one-letter words and ! ? (they carry sentiment)


def _vectorizer(kind: str, max_n: int, vocabulary: dict[str, int] | None = None, min_df: int = 1,
                max_features: int | None = None, max_df: float = 1.0) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    common = {"lowercase": True, "sublinear_tf": True, "dtype": np.float32, "vocabulary": vocabulary}
    if vocabulary is None:
        common.update(min_df=min_df, max_df=max_df, max_features=max_features)
    if kind == "word":
        return TfidfVectorizer(analyzer="word", ngram_range=(1, max_n), token_pattern=TOKEN_PATTERN, **common)
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, max_n), **common)


def _fit(vectorizer: Any, texts: Sequence[str], what: str) -> None:
    """Fit, turning scikit-learn's "no terms remain" into a clear error about the data."""
    from transferlab.errors import DataError

    try:
        vectorizer.fit(texts)
    except ValueError as e:
        if "no terms remain" in str(e) or "empty vocabulary" in str(e):
            raise DataError(f"the training texts have no {what} to count (single characters, numbers or "
                            "punctuation only, or too few texts for min_df); bag-of-words cannot use them") from e
        if "max_df corresponds to < documents than min_df" in str(e):
            n, max_df = len(texts), vectorizer.max_df
            most = max_df if isinstance(max_df, int) else int(round(max_df * n))
            raise DataError(f"min_df={vectorizer.min_df} asks for words in at least {vectorizer.min_df} of the "
                            f"{n} training texts, but max_df={max_df} drops words in more than {most}: no word "
                            "can pass both; lower min_df or raise max_df") from e
        raise


class TfidfFeaturizer:
    """``fit(texts)``, ``transform(texts) -> sparse (n, d)``, ``save(dir)``, ``load(dir)``."""

    def __init__(self, word_ngrams: int = 3, char_ngrams: int = 0, min_df: int = 1,
                 max_features: int | None = 300_000, max_df: float = 1.0) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.max_df = max_df
        self.parts: list[tuple[str, int, Any]] = []

    def fit(self, texts: Sequence[str]) -> TfidfFeaturizer:
        self.parts = []
        if self.word_ngrams > 0:
            vec = _vectorizer("word", self.word_ngrams, min_df=self.min_df, max_features=self.max_features,
                              max_df=self.max_df)
            _fit(vec, texts, "words")
            self.parts.append(("word", self.word_ngrams, vec))
        if self.char_ngrams > 0:
            vec = _vectorizer("char", self.char_ngrams, min_df=max(self.min_df, 2), max_features=self.max_features)
            _fit(vec, texts, "character n-grams")
            self.parts.append(("char", self.char_ngrams, vec))
        if not self.parts:
            raise ValueError("word_ngrams and char_ngrams cannot both be 0")
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        from scipy import sparse

        return sparse.hstack([vec.transform(texts) for _, _, vec in self.parts], format="csr", dtype=np.float32)

    @property
    def n_features(self) -> int:
        return sum(len(vec.vocabulary_) for _, _, vec in self.parts)

    def save(self, directory: Path) -> None:
        spec, tensors = [], {}
        for i, (kind, max_n, vec) in enumerate(self.parts):
            terms = [""] * len(vec.vocabulary_)
            for term, col in vec.vocabulary_.items():
                terms[col] = term
            spec.append({"kind": kind, "max_n": max_n, "vocabulary": terms})
            tensors[f"idf.{i}"] = np.ascontiguousarray(vec.idf_, dtype=np.float32)
        (directory / "tfidf.json").write_text(json.dumps({"parts": spec}, ensure_ascii=False))
        save_file(tensors, str(directory / "tfidf.safetensors"))

    @classmethod
    def load(cls, directory: Path) -> TfidfFeaturizer:
        spec = json.loads((directory / "tfidf.json").read_text())
        tensors = load_file(str(directory / "tfidf.safetensors"))
        self = cls(word_ngrams=0, char_ngrams=0)
        for i, part in enumerate(spec["parts"]):
            vocabulary = {term: col for col, term in enumerate(part["vocabulary"])}
            vec = _vectorizer(part["kind"], part["max_n"], vocabulary=vocabulary)
            vec.idf_ = tensors[f"idf.{i}"].astype(np.float64)
            self.parts.append((part["kind"], part["max_n"], vec))
            setattr(self, f"{part['kind']}_ngrams", part["max_n"])
        return self
