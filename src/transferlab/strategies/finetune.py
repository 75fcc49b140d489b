"""finetune: train the whole pretrained network and a new head, the backbone with a small learning rate.

The backbone starts from ImageNet weights and moves slowly (``lr``: 1e-4 from 1,000 training images, less below,
see the schedule rule) from a head that starts as the linear probe; BatchNorm statistics stay frozen. One stage,
one cosine schedule with a short warm-up.
"""

from __future__ import annotations

from transferlab.strategies._network import COMMON_DOC, NetworkStrategy, Stage


class Finetune(NetworkStrategy):
    __doc__ = __doc__ + "\n" + COMMON_DOC
    name = "finetune"
    summary = "whole pretrained network from the linear-probe head, small lr (AdamW), frozen BN statistics"
    reference_lr = 1e-4

    def __init__(self, backbone: str = "auto", epochs: int | None = None, lr: float | None = None,
                 head_lr: float | None = None, optimizer: str = "adamw", schedule: str = "cosine",
                 warmup_epochs: float = 0.5, weight_decay: float = 1e-4, batch_size: int = 16,
                 input_size: int | None = None, augment: bool | str = True, dropout: float = 0.2,
                 label_smoothing: float | None = None, class_weight: str | None = None, sampling: str | None = None,
                 bf16: bool = False, val_fraction: float = 0.15, patience: int | None = 3, seed: int = 0,
                 head_init: str = "probe",
                 checkpoint_dir: str | None = None, resume: bool = False) -> None:
        self.backbone = backbone
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.input_size = input_size
        self.augment = augment
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.sampling = sampling
        self.bf16 = bf16
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.head_init = head_init
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    def stages(self, n_groups: int, n_train: int) -> list[Stage]:
        return [Stage("all layers", n_groups, self.schedule_["epochs"])]
