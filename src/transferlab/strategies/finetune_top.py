"""finetune_top: unfreeze only the last ``n_groups`` layer groups of the pretrained network, plus a new head.

Cheaper than ``finetune`` (the frozen part needs no gradients) and safer on very small data: the generic early
layers keep their ImageNet weights. The unfrozen groups share ``lr`` (3e-4 from 1,000 training images, less
below: the schedule rule); the head uses ``head_lr``.
"""

from __future__ import annotations

from transferlab.errors import UserError
from transferlab.strategies._network import COMMON_DOC, NetworkStrategy, Stage


class FinetuneTop(NetworkStrategy):
    __doc__ = __doc__ + "\n" + COMMON_DOC
    name = "finetune_top"
    summary = "pretrained network with only its last n_groups layer groups (and a new head) trained"
    reference_lr = 3e-4

    def __init__(self, backbone: str = "auto", epochs: int | None = None, lr: float | None = None,
                 head_lr: float | None = None, n_groups: int = 2, optimizer: str = "adamw", schedule: str = "cosine",
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
        self.n_groups = n_groups
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
        name = getattr(self, "backbone_", self.backbone)
        if not 1 <= int(self.n_groups) <= n_groups:
            raise UserError(f"n_groups must be between 1 and {n_groups} (the layer groups of {name}), "
                            f"got {self.n_groups}")
        return [Stage(f"last {self.n_groups} groups", int(self.n_groups), self.schedule_["epochs"])]
