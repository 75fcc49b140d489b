"""Loaders for saved text models, one per ``weights.kind`` (the table is :data:`transferlab.model.loaders.LOADERS`);
each maps texts to probabilities, with no training code (the shared math sits in ``heads`` and ``nn``).

Empty texts cannot be classified: they are reported as failures, like unreadable images. An input is a text, or a
dict-like row holding the text under the model's text column and, for a model trained with ``--feature-columns``,
the side columns (encoded by the saved ``side_features.json``; missing values are allowed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.data.side_features import SideFeatureEncoder, cell_text, join_dense, join_sparse
from transferlab.errors import UserError
from transferlab.heads import Head, LinearHead, blend_naive_bayes, sparse_linear_proba, stack_features


def usable_texts(inputs: Sequence[object], text_column: str = "text") -> tuple[list[str], list[int], dict[int, str]]:
    """The non-empty texts of the inputs (texts, or rows holding one under ``text_column``), their indices, and why
    the others cannot be classified (empty, or not a text at all: bytes or an image given to a text model)."""
    texts, ok, failures = [], [], {}
    for i, item in enumerate(inputs):
        if isinstance(item, Mapping):
            text = cell_text(item.get(text_column))
        elif isinstance(item, str):
            text = item.strip()
        else:
            failures[i] = f"not a text ({type(item).__name__}): this model classifies texts"
            continue
        if text:
            texts.append(text)
            ok.append(i)
        else:
            failures[i] = "empty text"
    return texts, ok, failures


class TextPredictor:
    """Any saved text model: ``classify`` maps non-empty texts to probabilities; empty texts are failures.

    With a side-feature encoder, ``classify(texts, side)`` also gets the encoded side columns of the rows."""

    def __init__(self, classify: Callable[..., np.ndarray], side: SideFeatureEncoder | None = None,
                 text_column: str = "text") -> None:
        self.classify = classify
        self.side = side
        self.text_column = text_column

    def predict_proba(self, inputs: Sequence[object]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        texts, ok, failures = usable_texts(inputs, self.text_column)
        if not texts:
            return np.zeros((0, 0)), [], failures
        if self.side is None:
            return self.classify(texts), ok, failures
        rows = [inputs[i] for i in ok]
        if not all(isinstance(r, Mapping) for r in rows):
            raise UserError("this model also reads the columns " + ", ".join(self.side.names) +
                            f" beside {self.text_column!r}: give rows with them (a CSV/JSONL through --file)")
        return self.classify(texts, self.side.transform_rows(rows)), ok, failures  # type: ignore[arg-type]


def load_side_features(directory: Path, config: dict[str, Any]) -> SideFeatureEncoder | None:
    name = config.get("weights", {}).get("side_features")
    return SideFeatureEncoder.load(directory / name) if name else None


# a saved model embeds in float32 (ONNX Runtime): its predictions then equal its exported graph's (`transferlab
# export`, to 1e-5), whatever CPU trains or serves it; training may embed in bfloat16 (SentenceEncoder, "auto")
FLOAT32_BACKEND = "onnx"


def text_column_of(config: dict[str, Any]) -> str:
    return str(config.get("preprocessing", {}).get("text_column", "text"))


def load_embedding_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """MiniLM sentence embeddings (through the feature cache) or mean-pooled GloVe, [side features], then a saved
    head. A model trained on another body (``--backbone DIR`` from ``pretrain-text --method mlm``) carries it in
    ``transformer/``."""
    from transferlab.backbones import encoder_name
    from transferlab.features.text import text_encoder

    w = config["weights"]
    head, max_length = Head.load(directory), int(w.get("max_length", 256))
    body = str(directory / w["transformer"]) if w.get("transformer") else None
    encoder = text_encoder("minilm" if body else encoder_name(str(w.get("encoder", ""))), max_length, body)
    encoder.backend = FLOAT32_BACKEND

    def classify(texts: list[str], side: np.ndarray | None = None) -> np.ndarray:
        return head.predict_proba(join_dense(encoder.embed(texts), side))

    return TextPredictor(classify, load_side_features(directory, config), text_column_of(config))


def load_tfidf_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """Saved TF-IDF vocabulary and IDF, then a linear head applied to the sparse features."""
    from transferlab.features.tfidf import TfidfFeaturizer

    featurizer, head = TfidfFeaturizer.load(directory), Head.load(directory)

    def classify(texts: list[str], side: np.ndarray | None = None) -> np.ndarray:
        return sparse_linear_proba(head, join_sparse(featurizer.transform(texts), side))

    return TextPredictor(classify, load_side_features(directory, config), text_column_of(config))


def load_tfidf_embedding_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """Saved TF-IDF vocabulary and IDF beside cached sentence embeddings (MiniLM, or the encoder the weights name),
    then one linear head, its probabilities averaged with a naive Bayes head's on the TF-IDF block where saved."""
    from safetensors.numpy import load_file

    from transferlab.backbones import encoder_name
    from transferlab.features.text import text_encoder
    from transferlab.features.tfidf import TfidfFeaturizer

    w = config["weights"]
    featurizer, head = TfidfFeaturizer.load(directory), Head.load(directory)
    encoder = text_encoder(encoder_name(str(w.get("encoder", ""))), int(w.get("max_length", 256)))
    encoder.backend = FLOAT32_BACKEND
    weight = float(w.get("embedding_weight", 1.0))
    nb = w.get("naive_bayes")
    nb_head = LinearHead.from_saved(load_file(str(directory / nb["file"])), {}) if nb else None

    def classify(texts: list[str], side: np.ndarray | None = None) -> np.ndarray:
        tfidf = featurizer.transform(texts)
        proba = sparse_linear_proba(head, join_sparse(stack_features(tfidf, encoder.embed(texts), weight), side))
        return proba if nb_head is None else blend_naive_bayes(proba, nb_head, tfidf, float(nb["weight"]))

    return TextPredictor(classify, load_side_features(directory, config), text_column_of(config))


def load_wordnet(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """A saved word-level network (CNN or RNN over word vectors) and its vocabulary."""
    from safetensors.torch import load_file

    from transferlab.nn.wordnets import Vocabulary, build_wordnet, predict_wordnet

    w = config["weights"]
    net = build_wordnet(w["arch"], int(w["vocab_size"]), int(w["n_classes"]), **w.get("net", {}))
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    vocab, max_tokens = Vocabulary.load(directory / w["vocabulary"]), int(w["max_tokens"])
    return TextPredictor(lambda texts: predict_wordnet(net, vocab, texts, max_tokens),
                         text_column=text_column_of(config))


def load_transformer(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """A saved fine-tuned transformer classifier (body + pooling + head) and its tokenizer."""
    from safetensors.torch import load_file

    from transferlab._torch import native_bf16
    from transferlab.nn.transformer import TransformerClassifier, body_from_config, predict_transformer

    w = config["weights"]
    body, tokenizer = body_from_config(directory / w["transformer"])
    net = TransformerClassifier(body, int(w["n_classes"]), float(w.get("dropout", 0.1)))
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    max_length = int(w["max_length"])
    bf16 = bool(w.get("bf16", False)) and native_bf16()  # trained in bf16: answer in it where the CPU has the units
    return TextPredictor(lambda texts: predict_transformer(net, tokenizer, texts, max_length, bf16=bf16),
                         text_column=text_column_of(config))


def load_tuned_embedding_head(directory: Path, config: dict[str, Any]) -> TextPredictor:
    """A saved tuned transformer body (mean pooling, L2 normalisation) and a linear head on its embeddings."""
    from safetensors.torch import load_file

    from transferlab.nn.transformer import body_from_config, embed_texts

    w = config["weights"]
    body, tokenizer = body_from_config(directory / w["transformer"])
    body.load_state_dict(load_file(str(directory / w["file"])))
    body.eval()
    head, max_length = Head.load(directory), int(w["max_length"])

    def classify(texts: list[str], side: np.ndarray | None = None) -> np.ndarray:
        return head.predict_proba(join_dense(embed_texts(body, tokenizer, texts, max_length), side))

    return TextPredictor(classify, load_side_features(directory, config), text_column_of(config))
