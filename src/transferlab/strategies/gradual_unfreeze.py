"""gradual_unfreeze: train the new head on the frozen base, then unfreeze one layer group per stage.

As in ULMFiT / fastai: stage 0 trains only the head (``head_epochs``; with the default head from the linear probe
this stage is the probe itself, solved exactly, and is skipped); each following stage unfreezes the next group
from the top and trains for ``stage_epochs`` (the last stage for the rest of ``epochs``), with discriminative
learning rates: the top group gets ``lr`` and each earlier group the rate of the group above divided by
``lr_ratio`` (default 3). ``n_stages`` is how many groups are unfrozen (default: from the training set's size,
one more group each time it doubles beyond 100 images; see the schedule rule).
"""

from __future__ import annotations

from transferlab.errors import UserError
from transferlab.strategies._network import COMMON_DOC, NetworkStrategy, Stage


class GradualUnfreeze(NetworkStrategy):
    __doc__ = __doc__ + "\n" + COMMON_DOC
    name = "gradual_unfreeze"
    summary = "head on the frozen base, then one more layer group per stage; earlier groups get lr / lr_ratio"
    reference_lr = 3e-4

    def __init__(self, backbone: str = "auto", epochs: int | None = None, lr: float | None = None,
                 head_lr: float | None = None, head_epochs: int | None = None,
                 stage_epochs: int = 1, n_stages: int | None = None,
                 lr_ratio: float = 3.0, optimizer: str = "adamw", schedule: str = "cosine",
                 warmup_epochs: float = 0.0, weight_decay: float = 1e-4, batch_size: int = 16,
                 input_size: int | None = None, augment: bool | str = True, dropout: float = 0.2,
                 label_smoothing: float | None = None, class_weight: str | None = None, sampling: str | None = None,
                 bf16: bool = False, val_fraction: float = 0.15, patience: int | None = 3, seed: int = 0,
                 head_init: str = "probe",
                 checkpoint_dir: str | None = None, resume: bool = False) -> None:
        self.backbone = backbone
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.head_epochs = head_epochs
        self.stage_epochs = stage_epochs
        self.n_stages = n_stages
        self.lr_ratio = lr_ratio
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
        by_size = max(1, (n_train // 100).bit_length())  # 1 + floor(log2(n / 100)) from 100 images, else 1
        n = min(n_groups, by_size) if self.n_stages is None else int(self.n_stages)
        name = getattr(self, "backbone_", self.backbone)
        if not 0 <= n <= n_groups:
            raise UserError(f"n_stages must be between 0 and {n_groups} (the layer groups of {name}), "
                            f"got {self.n_stages}")
        if not self.lr_ratio >= 1:
            raise UserError(f"lr_ratio must be >= 1, got {self.lr_ratio}")
        from_probe = self.head_init == "probe"
        head_epochs = (0 if from_probe else 2) if self.head_epochs is None else int(self.head_epochs)
        if head_epochs < 0 or int(self.stage_epochs) < 1 or (head_epochs == 0 and not from_probe):
            raise UserError("stage_epochs must be >= 1 and head_epochs >= 1 (0 only with head_init=probe)")
        total = self.schedule_["epochs"]
        last = max(1, total - int(self.stage_epochs) * (n - 1))  # the last stage gets the rest of the budget
        stages = [Stage("head", 0, head_epochs)] if head_epochs else []
        for k in range(1, n + 1):
            stages.append(Stage(f"top {k} groups", k, last if k == n else int(self.stage_epochs)))
        return stages or [Stage("head", 0, max(1, total))]
