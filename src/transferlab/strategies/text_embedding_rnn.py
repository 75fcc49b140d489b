"""text_embedding_rnn: a bidirectional GRU (or LSTM, ``cell="lstm"``) over GloVe word vectors.

The same recipe as ``text_embedding_cnn`` (task vocabulary, GloVe or random embedding matrix, embeddings frozen
then fine-tuned at ``embedding_lr``, early stopping on a stratified hold-out); only the network differs: a
bidirectional recurrent layer of ``hidden`` units per direction, mean and max over the real tokens, dropout, linear.
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import UserError
from transferlab.strategies.text_embedding_cnn import TextEmbeddingCNN


class TextEmbeddingRNN(TextEmbeddingCNN):
    name = "text_embedding_rnn"
    summary = "bidirectional GRU/LSTM on GloVe word vectors: embeddings frozen, then fine-tuned"

    def __init__(self, embeddings: str = "glove", cell: str = "gru", hidden: int = 128, frozen_epochs: int = 5,
                 unfrozen_epochs: int = 3, lr: float = 2e-3, embedding_lr: float = 1e-4, batch_size: int = 50,
                 dropout: float = 0.5, max_tokens: int = 256, min_count: int = 1, weight_decay: float = 1e-4,
                 val_fraction: float = 0.1, patience: int | None = 3, seed: int = 0) -> None:
        self.embeddings = embeddings
        self.cell = cell
        self.hidden = hidden
        self.frozen_epochs = frozen_epochs
        self.unfrozen_epochs = unfrozen_epochs
        self.lr = lr
        self.embedding_lr = embedding_lr
        self.batch_size = batch_size
        self.dropout = dropout
        self.max_tokens = max_tokens
        self.min_count = min_count
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed

    @property
    def arch(self) -> str:  # type: ignore[override]
        return self.cell

    def _net_kwargs(self) -> dict[str, Any]:
        return {"hidden": int(self.hidden), "dropout": float(self.dropout)}

    def _check_params(self) -> None:
        if self.cell not in ("gru", "lstm"):
            raise UserError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        super()._check_params()
