"""MiniLM (:data:`transferlab.backbones.minilm.MINILM`, from its weights package) as a trainable classifier: the
BERT body, mean pooling over the attention mask, dropout and a new linear head. Used by ``text_finetune`` and by the
predictor of its saved models, which rebuilds the body from the saved ``transformer/config.json`` (no package needed
then).

Layer groups, bottom to top, for discriminative learning rates and gradual unfreezing: the embeddings, then the six
transformer layers in ``layers_per_group`` blocks.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

# the offline loading of MiniLM lives with its registry entry (backbones/minilm.py); nn builds on it
from transferlab.backbones.minilm import TOKENIZER_FILES, _transformers, minilm_path
from transferlab.backbones.text_onnx import pad_batch


class TransformerClassifier(nn.Module):
    """``forward((input_ids, attention_mask)) -> logits``."""

    def __init__(self, body: nn.Module, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(body.config.hidden_size, n_classes)

    def embed(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, mask = inputs
        hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.head(self.dropout(self.embed(inputs)))

    def layer_groups(self, layers_per_group: int = 2) -> list[list[nn.Module]]:
        layers = list(self.body.encoder.layer)
        groups: list[list[nn.Module]] = [[self.body.embeddings]]
        for s in range(0, len(layers), layers_per_group):
            groups.append(layers[s : s + layers_per_group])
        return groups


def load_pretrained_body(folder: str | None = None) -> tuple[nn.Module, object]:
    """(body, tokenizer) from the packaged MiniLM folder (or another local folder)."""
    tf = _transformers()
    folder = folder or minilm_path()
    return (tf.AutoModel.from_pretrained(folder, local_files_only=True),
            tf.AutoTokenizer.from_pretrained(folder, local_files_only=True))


def body_from_config(folder: Path) -> tuple[nn.Module, object]:
    """An untrained body with the saved architecture, and the saved tokenizer (weights are loaded afterwards)."""
    tf = _transformers()
    config = tf.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    return tf.AutoModel.from_config(config), tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def copy_tokenizer_files(source: str, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(source) / name).exists():
            shutil.copyfile(Path(source) / name, target / name)


def tokenize(tokenizer: object, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length`` (with [CLS] and [SEP]), unpadded."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]  # type: ignore[operator]


def collate(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) tensors padded with 0 to the longest sequence (the same padding as the frozen encoders)."""
    ids, mask = pad_batch(sequences)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def bucketed_order(lengths: np.ndarray, indices: np.ndarray, batch_size: int, rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (little padding, so much faster on CPU): shuffle, sort within chunks of
    50 batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(indices)
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[b : b + batch_size] for b in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(encoded: Sequence[Sequence[int]], indices: np.ndarray, batch_size: int
                 ) -> Iterator[tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor]]]:
    """(indices, inputs) in order of length, for inference."""
    idx = indices[np.argsort([len(encoded[i]) for i in indices], kind="stable")]
    for s in range(0, len(idx), batch_size):
        chunk = idx[s : s + batch_size]
        yield chunk, collate([encoded[i] for i in chunk])


def predict_transformer(net: TransformerClassifier, tokenizer: object, texts: Sequence[str], max_length: int,
                        batch_size: int = 64, bf16: bool = False) -> np.ndarray:
    """Class probabilities, (n, classes) float32; ``bf16``: under CPU bfloat16 autocast (a model trained in it, on a
    CPU with bf16 matrix units: ~2x faster)."""
    encoded = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), net.head.out_features), np.float32)
    net.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for chunk, inputs in eval_batches(encoded, np.arange(len(texts)), batch_size):
            out[chunk] = torch.softmax(net(inputs).float(), 1).numpy()
    return out


def embed_texts(body: nn.Module, tokenizer: object, texts: list[str], max_length: int, batch_size: int = 64
                ) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings of the (tuned) body, as a (n, hidden) float32 array: what
    ``text_fewshot`` trains its head on and what the loader of its saved models feeds that head."""
    encoder = TransformerClassifier(body, 1, 0.0).eval()
    encoded = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), body.config.hidden_size), np.float32)
    with torch.inference_mode():
        for chunk, inputs in eval_batches(encoded, np.arange(len(texts)), batch_size):
            out[chunk] = torch.nn.functional.normalize(encoder.embed(inputs), dim=1).numpy()
    return out
