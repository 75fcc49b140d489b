"""Loaders for saved text models (registered by ``weights.kind``); each maps texts to probabilities.

Empty texts cannot be classified: they are reported as failures, like unreadable images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..heads import Head, softmax
from ..model import register_predictor


def usable_texts(inputs: Sequence[str]) -> tuple[list[str], list[int], dict[int, str]]:
    texts, ok, failures = [], [], {}
    for i, item in enumerate(inputs):
        text = str(item).strip()
        if text:
            texts.append(text)
            ok.append(i)
        else:
            failures[i] = "empty text"
    return texts, ok, failures


class TextPredictor:
    """Any saved text model: ``classify`` maps non-empty texts to probabilities; empty texts are failures."""

    def __init__(self, classify: Callable[[list[str]], np.ndarray]) -> None:
        self.classify = classify

    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        texts, ok, failures = usable_texts(inputs)
        if not texts:
            return np.zeros((0, 0)), [], failures
        return self.classify(texts), ok, failures


def sparse_linear_proba(head: Any, x: Any) -> np.ndarray:
    logits = np.asarray(x @ head.weight.T, np.float64) + head.bias
    return softmax(logits)


@register_predictor("text_embedding+head")
def _load_embedding_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """MiniLM sentence embeddings (through the feature cache), then a saved head."""
    from .encoder import SentenceEncoder

    head, max_length = Head.load(directory), int(config["weights"].get("max_length", 256))
    return TextPredictor(lambda texts: head.predict_proba(SentenceEncoder(max_length).embed(texts)))


@register_predictor("text_tfidf+head")
def _load_tfidf_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """Saved TF-IDF vocabulary and IDF, then a linear head applied to the sparse features."""
    from .tfidf import TfidfFeaturizer

    featurizer, head = TfidfFeaturizer.load(directory), Head.load(directory)
    return TextPredictor(lambda texts: sparse_linear_proba(head, featurizer.transform(texts)))


@register_predictor("text_wordnet")
def _load_wordnet(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """A saved word-level network (CNN or RNN over word vectors) and its vocabulary."""
    from safetensors.torch import load_file

    from .wordnets import Vocabulary, build_wordnet, predict_wordnet

    w = config["weights"]
    net = build_wordnet(w["arch"], int(w["vocab_size"]), int(w["n_classes"]), **w.get("net", {}))
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    vocab, max_tokens = Vocabulary.load(directory / w["vocabulary"]), int(w["max_tokens"])
    return TextPredictor(lambda texts: predict_wordnet(net, vocab, texts, max_tokens))


@register_predictor("text_transformer")
def _load_transformer(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """A saved fine-tuned transformer classifier (body + pooling + head) and its tokenizer."""
    from safetensors.torch import load_file

    from .transformer import TransformerClassifier, body_from_config, predict_transformer

    w = config["weights"]
    body, tokenizer = body_from_config(directory / w["transformer"])
    net = TransformerClassifier(body, int(w["n_classes"]), float(w.get("dropout", 0.1)))
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    max_length = int(w["max_length"])
    return TextPredictor(lambda texts: predict_transformer(net, tokenizer, texts, max_length))


@register_predictor("text_tuned_embedding+head")
def _load_tuned_embedding_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """A saved tuned transformer body (mean pooling, L2 normalisation) and a linear head on its embeddings."""
    from safetensors.torch import load_file

    from ..strategies.text_fewshot import embed_texts
    from .transformer import body_from_config

    w = config["weights"]
    body, tokenizer = body_from_config(directory / w["transformer"])
    body.load_state_dict(load_file(str(directory / w["file"])))
    body.eval()
    head, max_length = Head.load(directory), int(w["max_length"])
    return TextPredictor(lambda texts: head.predict_proba(embed_texts(body, tokenizer, texts, max_length)))
