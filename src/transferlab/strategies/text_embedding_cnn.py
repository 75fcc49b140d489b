"""text_embedding_cnn: a 1D CNN over GloVe word vectors, embeddings frozen first, then fine-tuned.

The task vocabulary comes from the training texts; its embedding matrix from GloVe 6B 50-d (``embeddings="glove"``;
unknown words get random rows with GloVe's standard deviation) or wholly random (``embeddings="random"``, the
baseline that shows what the pretrained vectors add) or a folder of word vectors trained on your own corpus by
``transferlab pretrain-text --method skipgram|cbow`` (``embeddings=DIR``, or ``--backbone DIR`` on the command
line), used like GloVe. Two calls of the one training loop:

1. ``frozen_epochs`` with the embedding frozen, everything else at ``lr``;
2. ``unfrozen_epochs`` with the embedding trainable at ``embedding_lr`` (smaller) and the rest at ``lr / 3``.

With ``embeddings="random"`` there is nothing worth freezing: the embedding trains from the start, for the same
total number of epochs, at ``lr``. A stratified ``val_fraction`` of train drives early stopping (best weights
restored). The network is Kim (2014): kernel sizes 3, 4, 5, ``filters`` each, max over time, dropout, linear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.strategies.base import Strategy


class TextEmbeddingCNN(Strategy):
    name = "text_embedding_cnn"
    modality = "text"
    summary = "1D CNN on GloVe word vectors: embeddings frozen, then fine-tuned with a smaller lr"
    arch = "cnn"

    def __init__(self, embeddings: str = "glove", frozen_epochs: int = 6, unfrozen_epochs: int = 4,
                 lr: float = 1e-3, embedding_lr: float = 1e-4, batch_size: int = 50, filters: int = 100,
                 dropout: float = 0.5, max_tokens: int = 256, min_count: int = 1, weight_decay: float = 1e-4,
                 val_fraction: float = 0.1, patience: int | None = 3, seed: int = 0) -> None:
        self.embeddings = embeddings
        self.frozen_epochs = frozen_epochs
        self.unfrozen_epochs = unfrozen_epochs
        self.lr = lr
        self.embedding_lr = embedding_lr
        self.batch_size = batch_size
        self.filters = filters
        self.dropout = dropout
        self.max_tokens = max_tokens
        self.min_count = min_count
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed

    # --- the network -----------------------------------------------------------------------------------------------
    def _net_kwargs(self) -> dict[str, Any]:
        return {"filters": int(self.filters), "dropout": float(self.dropout)}

    def _check_params(self) -> None:
        if self.embeddings not in ("glove", "random"):
            from transferlab.backbones.folder import word_vectors_backbone

            if not Path(str(self.embeddings)).is_dir():
                raise UserError(f"embeddings must be 'glove', 'random' or a word-vector folder from "
                                f"`transferlab pretrain-text`, got {self.embeddings!r}")
            word_vectors_backbone(self.embeddings)
        if int(self.frozen_epochs) < 0 or int(self.unfrozen_epochs) < 0 or \
                int(self.frozen_epochs) + int(self.unfrozen_epochs) < 1:
            raise UserError("frozen_epochs and unfrozen_epochs must be >= 0, and at least one epoch in all")
        if not self.lr > 0 or not self.embedding_lr > 0:
            raise UserError(f"lr and embedding_lr must be > 0, got {self.lr} and {self.embedding_lr}")
        if int(self.batch_size) < 1 or int(self.max_tokens) < 1:
            raise UserError("batch_size and max_tokens must be >= 1")
        if not 0 <= self.val_fraction < 0.9:
            raise UserError(f"val_fraction must be in [0, 0.9), got {self.val_fraction}")

    def _stages(self) -> list[tuple[str, int, bool]]:
        """(name, epochs, embedding trainable) per call of the training loop."""
        if self.embeddings == "random":
            return [("random embeddings, all trainable", int(self.frozen_epochs) + int(self.unfrozen_epochs), True)]
        stages = [("embeddings frozen", int(self.frozen_epochs), False),
                  ("embeddings unfrozen", int(self.unfrozen_epochs), True)]
        return [s for s in stages if s[1] > 0]

    def fit(self, X: Any, y: Any = None) -> TextEmbeddingCNN:  # noqa: N803
        import torch

        from transferlab import runtime
        from transferlab._torch import set_torch_threads
        from transferlab.data.images import stratified_split
        from transferlab.data.texts import texts_of
        from transferlab.nn.wordnets import Vocabulary, build_wordnet, embedding_matrix, pad_batch
        from transferlab.training import TrainConfig, seed_everything, train_loop

        self._check_params()
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        texts = texts_of(X)
        set_torch_threads()
        seed_everything(self.seed)
        tr, va = (stratified_split([str(v) for v in labels], self.val_fraction, self.seed)
                  if self.val_fraction > 0 else (list(range(len(labels))), []))
        tr_idx, va_idx = np.asarray(tr, np.int64), np.asarray(va, np.int64)
        vocab = Vocabulary.build([texts[i] for i in tr_idx], int(self.min_count))
        matrix, found = embedding_matrix(vocab, self.embeddings, self.seed)
        net = build_wordnet(self.arch, len(vocab), len(classes), embed_dim=int(matrix.shape[1]), **self._net_kwargs())
        net.embedding.weight.data.copy_(torch.from_numpy(matrix))
        encoded = [vocab.encode(t, int(self.max_tokens)) for t in texts]
        bs = int(self.batch_size)

        def batches(indices: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for s in range(0, len(indices), bs):
                chunk = indices[s : s + bs]
                yield pad_batch([encoded[i] for i in chunk]), torch.from_numpy(labels[chunk])

        def val_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            return batches(va_idx[np.argsort([len(encoded[i]) for i in va_idx], kind="stable")])

        steps = -(-len(tr_idx) // bs)
        histories = []
        for s, (stage, epochs, train_embedding) in enumerate(self._stages()):
            net.embedding.weight.requires_grad_(train_embedding)
            rest = [p for n, p in net.named_parameters() if not n.startswith("embedding.")]
            fine = train_embedding and self.embeddings != "random"
            groups = [{"params": rest, "lr": self.lr / 3 if fine else self.lr, "name": "network"}]
            if train_embedding:
                groups.insert(0, {"params": [net.embedding.weight], "lr": self.embedding_lr if fine else self.lr,
                                  "name": "embedding", "weight_decay": 0.0})

            def train_batches(epoch: int, s: int = s) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
                return batches(tr_idx[np.random.default_rng((self.seed, s, epoch)).permutation(len(tr_idx))])

            cfg = TrainConfig(epochs=epochs, lr=self.lr, optimizer="adamw", weight_decay=self.weight_decay,
                              schedule="cosine" if fine else "none", patience=self.patience if len(va_idx) else None,
                              seed=self.seed + s)
            history = train_loop(net, groups, train_batches, val_batches if len(va_idx) else None, steps, cfg,
                                 progress=runtime.show_progress(), desc=f"{self.name}: {stage}")
            histories.append({"stage": stage, **history.to_dict()})
        net.eval()
        self.net_ = net
        self.vocabulary_ = vocab
        self.glove_coverage_ = found / max(1, len(vocab) - 2)
        self.classes_ = list(classes)
        self.history_ = histories
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab.data.texts import texts_of
        from transferlab.nn.wordnets import predict_wordnet

        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        return predict_wordnet(self.net_, self.vocabulary_, texts_of(X), int(self.max_tokens))

    def save_weights(self, directory: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        self.check_is_fitted()
        save_file({k: v.detach().contiguous() for k, v in self.net_.state_dict().items()},
                  str(directory / "model.safetensors"))
        self.vocabulary_.save(directory / "vocabulary.json")
        (directory / "history.json").write_text(json.dumps({"stages": self.history_}, indent=2))
        return {"kind": "text_wordnet", "file": "model.safetensors", "vocabulary": "vocabulary.json",
                "arch": self.arch, "net": {**self._net_kwargs(), "embed_dim": int(self.net_.embedding.embedding_dim)},
                "vocab_size": len(self.vocabulary_),
                "n_classes": len(self.classes_), "max_tokens": int(self.max_tokens),
                "embeddings": self.embeddings, "glove_coverage": self.glove_coverage_}
