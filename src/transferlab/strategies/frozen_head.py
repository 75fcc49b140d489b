"""frozen_head: the pretrained base stays frozen; a new small PyTorch head trains on its cached features.

The head is linear (``hidden=0``) or one hidden layer with dropout. A held-out part of train
(``val_fraction``, stratified) drives early stopping and the best epoch's weights are kept. Trained through the
shared training loop, so optimizers, schedules and class weights work as everywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.data.images import stratified_split
from transferlab.errors import UserError
from transferlab.heads import MLPHead
from transferlab.strategies._features import LAYERS, cached_features
from transferlab.strategies.base import Strategy


class FrozenHead(Strategy):
    name = "frozen_head"
    summary = "frozen backbone + new PyTorch head (linear or MLP) with early stopping"

    def __init__(self, backbone: str = "efficientnet_lite0", hidden: int = 256, dropout: float = 0.3,
                 epochs: int = 100, lr: float = 3e-3, batch_size: int = 32, optimizer: str = "adamw",
                 weight_decay: float = 1e-2, patience: int = 15, val_fraction: float = 0.15,
                 class_weight: str | None = None, layer: str = "top", seed: int = 0) -> None:
        self.backbone = backbone
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.class_weight = class_weight
        self.layer = layer
        self.seed = seed

    def fit_features(self, features: np.ndarray, y: np.ndarray, classes: list[str]) -> FrozenHead:
        import torch
        import torch.nn as nn

        from transferlab import runtime
        from transferlab.training import TrainConfig, class_weight_tensor, seed_everything, train_loop

        if self.hidden < 0 or not 0 <= self.dropout < 1:
            raise UserError("hidden must be >= 0 and dropout in [0, 1)")
        self.classes_ = list(classes)
        n_classes = len(classes)
        labels = [str(v) for v in y]
        tr, va = stratified_split(labels, self.val_fraction, self.seed) if self.val_fraction > 0 else (
            list(range(len(y))), [])
        mean = features[tr].mean(axis=0)
        # a floor on the scale: a feature that is (almost) constant on a small train split must not blow up on
        # new data
        std = features[tr].std(axis=0)
        scale = std + 0.1 * float(std.mean()) + 1e-6
        x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
        t = torch.from_numpy(y.astype(np.int64))
        seed_everything(self.seed)
        dim = features.shape[1]
        if self.hidden:
            model = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(dim, self.hidden), nn.ReLU(),
                                  nn.Dropout(self.dropout), nn.Linear(self.hidden, n_classes))
        else:
            model = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(dim, n_classes))
        tr_idx = np.asarray(tr)
        bs = self.batch_size

        def train_batches(epoch: int):  # noqa: ANN202
            order = np.random.default_rng(self.seed * 1000 + epoch).permutation(tr_idx)
            for s in range(0, len(order), bs):
                b = torch.from_numpy(order[s : s + bs])
                yield x[b], t[b]

        va_idx = torch.from_numpy(np.asarray(va, dtype=np.int64))
        val_batches = (lambda: [(x[va_idx], t[va_idx])]) if len(va) else None
        cfg = TrainConfig(epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, weight_decay=self.weight_decay,
                          schedule="cosine", patience=self.patience if len(va) else None, seed=self.seed)
        self.history_ = train_loop(model, [{"params": list(model.parameters())}], train_batches, val_batches,
                                   steps_per_epoch=(len(tr_idx) + bs - 1) // bs, cfg=cfg,
                                   class_weights=class_weight_tensor(y[tr_idx], n_classes, self.class_weight),
                                   progress=runtime.show_progress(), desc="training head")
        linears = [m for m in model if isinstance(m, nn.Linear)]
        self.head_ = MLPHead([(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in linears], mean, scale)
        self.n_features_in_ = dim
        return self

    def fit(self, X: Any, y: Any = None) -> FrozenHead:  # noqa: N803
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        features, ok = cached_features(X, self.backbone, self.layer, strict=False)
        return self.fit_features(features, labels[ok], classes)

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        self.check_is_fitted()
        return self.head_.predict_proba(features)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        features, _ = cached_features(X, self.backbone, self.layer, desc="features for prediction")
        return self.predict_proba_features(features)

    def save_weights(self, directory: Path) -> dict[str, Any]:
        self.check_is_fitted()
        self.head_.save(directory)
        (directory / "history.json").write_text(json.dumps(self.history_.to_dict(), indent=2))
        return {"kind": "features+head", "backbone": self.backbone, "layer": self.layer,
                "feature_outputs": list(LAYERS[self.layer])}
