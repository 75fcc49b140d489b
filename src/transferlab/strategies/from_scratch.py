"""from_scratch: the backbone's architecture with random weights, trained end to end.

The control experiment for transfer learning: same network, same data pipeline and epochs as ``finetune``, but
no pretrained weights (``spec.build(pretrained=False)``), so BatchNorm trains normally and every layer uses
``lr`` (default 1e-3).
"""

from __future__ import annotations

from transferlab.strategies._network import COMMON_DOC, NetworkStrategy, Stage


class FromScratch(NetworkStrategy):
    __doc__ = __doc__ + "\n" + COMMON_DOC
    name = "from_scratch"
    summary = "same architecture, randomly initialised, same budget: the baseline transfer must beat"

    pretrained = False

    def __init__(self, backbone: str = "efficientnet_lite0", epochs: int = 6, lr: float = 1e-3,
                 head_lr: float = 1e-3, optimizer: str = "adamw", schedule: str = "cosine",
                 warmup_epochs: float = 0.5, weight_decay: float = 1e-4, batch_size: int = 16,
                 input_size: int | None = None, augment: bool | str = True, dropout: float = 0.2,
                 label_smoothing: float = 0.1, class_weight: str | None = None, sampling: str | None = None,
                 bf16: bool = False, val_fraction: float = 0.15, patience: int | None = None, seed: int = 0,
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
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    def stages(self, n_groups: int, n_train: int) -> list[Stage]:
        return [Stage("all layers", n_groups, self.schedule_["epochs"])]
