"""Loaders for saved text models (registered by ``weights.kind``); each maps texts to probabilities.

Empty texts cannot be classified: they are reported as failures, like unreadable images.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class EmbeddingHeadPredictor:
    """MiniLM sentence embeddings (through the feature cache), then a saved head."""

    def __init__(self, head: Head, max_length: int = 256) -> None:
        self.head = head
        self.max_length = max_length

    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        from .encoder import SentenceEncoder

        texts, ok, failures = usable_texts(inputs)
        if not texts:
            return np.zeros((0, 0)), [], failures
        return self.head.predict_proba(SentenceEncoder(self.max_length).embed(texts)), ok, failures


class TfidfHeadPredictor:
    """Saved TF-IDF vocabulary and IDF, then a linear head applied to the sparse features."""

    def __init__(self, featurizer: Any, head: Any) -> None:
        self.featurizer = featurizer
        self.head = head

    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        texts, ok, failures = usable_texts(inputs)
        if not texts:
            return np.zeros((0, 0)), [], failures
        return sparse_linear_proba(self.head, self.featurizer.transform(texts)), ok, failures


def sparse_linear_proba(head: Any, x: Any) -> np.ndarray:
    logits = np.asarray(x @ head.weight.T, np.float64) + head.bias
    return softmax(logits)


@register_predictor("text_embedding+head")
def _load_embedding_head(directory: Path, config: dict[str, Any]) -> EmbeddingHeadPredictor:
    return EmbeddingHeadPredictor(Head.load(directory), int(config["weights"].get("max_length", 256)))


@register_predictor("text_tfidf+head")
def _load_tfidf_head(directory: Path, config: dict[str, Any]) -> TfidfHeadPredictor:
    from .tfidf import TfidfFeaturizer

    return TfidfHeadPredictor(TfidfFeaturizer.load(directory), Head.load(directory))


class WordNetPredictor:
    """A saved word-level network (CNN or RNN over word vectors) and its vocabulary."""

    def __init__(self, net: Any, vocab: Any, max_tokens: int) -> None:
        self.net = net
        self.vocab = vocab
        self.max_tokens = max_tokens

    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        from .wordnets import predict_wordnet

        texts, ok, failures = usable_texts(inputs)
        if not texts:
            return np.zeros((0, 0)), [], failures
        return predict_wordnet(self.net, self.vocab, texts, self.max_tokens), ok, failures


@register_predictor("text_wordnet")
def _load_wordnet(directory: Path, config: dict[str, Any]) -> WordNetPredictor:
    from safetensors.torch import load_file

    from .wordnets import Vocabulary, build_wordnet

    w = config["weights"]
    net = build_wordnet(w["arch"], int(w["vocab_size"]), int(w["n_classes"]), **w.get("net", {}))
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    return WordNetPredictor(net, Vocabulary.load(directory / w["vocabulary"]), int(w["max_tokens"]))


class TransformerPredictor:
    """A saved fine-tuned transformer classifier (body + pooling + head) and its tokenizer."""

    def __init__(self, net: Any, tokenizer: Any, max_length: int) -> None:
        self.net = net
        self.tokenizer = tokenizer
        self.max_length = max_length

    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        from .transformer import predict_transformer

        texts, ok, failures = usable_texts(inputs)
        if not texts:
            return np.zeros((0, 0)), [], failures
        return predict_transformer(self.net, self.tokenizer, texts, self.max_length), ok, failures


@register_predictor("text_transformer")
def _load_transformer(directory: Path, config: dict[str, Any]) -> TransformerPredictor:
    from safetensors.torch import load_file

    from .transformer import TransformerClassifier, body_from_config

    w = config["weights"]
    body, tokenizer = body_from_config(directory / w["transformer"])
    net = TransformerClassifier(body, int(w["n_classes"]), float(w.get("dropout", 0.1)))
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    return TransformerPredictor(net, tokenizer, int(w["max_length"]))


class TunedEmbeddingHeadPredictor:
    """A saved tuned transformer body (mean pooling, L2 normalisation) and a linear head on its embeddings."""

    def __init__(self, body: Any, tokenizer: Any, head: Head, max_length: int) -> None:
        self.body = body
        self.tokenizer = tokenizer
        self.head = head
        self.max_length = max_length

    def predict_proba(self, inputs: Sequence[str]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        from ..strategies.text_fewshot import embed_texts

        texts, ok, failures = usable_texts(inputs)
        if not texts:
            return np.zeros((0, 0)), [], failures
        return self.head.predict_proba(embed_texts(self.body, self.tokenizer, texts, self.max_length)), ok, failures


@register_predictor("text_tuned_embedding+head")
def _load_tuned_embedding_head(directory: Path, config: dict[str, Any]) -> TunedEmbeddingHeadPredictor:
    from safetensors.torch import load_file

    from .transformer import body_from_config

    w = config["weights"]
    body, tokenizer = body_from_config(directory / w["transformer"])
    body.load_state_dict(load_file(str(directory / w["file"])))
    body.eval()
    return TunedEmbeddingHeadPredictor(body, tokenizer, Head.load(directory), int(w["max_length"]))
