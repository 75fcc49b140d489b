"""Frozen text embeddings by encoder name: a lookup in the backbone registry (:mod:`transferlab.backbones`).

The encoders themselves live with their weights' loading in ``backbones/`` (``minilm.py``: MiniLM
sentence embeddings, mean-pooled, L2-normalised, cached by model + pooling + max length + SHA-1 of the text;
``glove.py``: mean-pooled GloVe 6B 50-d), so that ``features`` and ``nn`` import from ``backbones`` and never the
reverse. The names below stay importable from here, where strategies, workflows and saved-model loaders find them.
"""

from __future__ import annotations

from typing import Any

from transferlab.backbones import DEFAULT_TEXT_ENCODER, list_backbones
from transferlab.backbones.glove import GLOVE, GloveEncoder
from transferlab.backbones.minilm import (
    EMBEDDING_DIM,
    MINILM,
    SentenceEncoder,
    load_minilm,
    mean_pool,
    minilm_path,
    text_digest,
    weights_digest,
)
from transferlab.errors import UserError

# the encoders registered when transferlab loads (``encoder=`` of text_headless, ``--backbones`` of compare-text)
TEXT_ENCODERS = tuple(s.name for s in list_backbones("text"))


def text_encoder(name: str = DEFAULT_TEXT_ENCODER, max_length: int = 256, model_path: str | None = None) -> Any:
    """The frozen sentence encoder registered as ``name``: ``minilm`` (MiniLM, or the body in
    ``model_path``), ``glove`` (mean-pooled GloVe) or any text encoder added to the registry."""
    encoders = {s.name: s for s in list_backbones("text")}
    if name not in encoders:
        raise UserError(f"unknown text encoder {name!r}; choose one of: {', '.join(encoders)}")
    return encoders[name].encoder(max_length=max_length, model_path=model_path)


__all__ = ["EMBEDDING_DIM", "GLOVE", "MINILM", "TEXT_ENCODERS", "GloveEncoder", "SentenceEncoder", "load_minilm",
           "mean_pool", "minilm_path", "text_digest", "text_encoder", "weights_digest"]
