"""The one training loop, used by every strategy that trains a network (image heads and whole networks, text later).

What it does, in order: optimizer over parameter groups (each with its own learning rate, for discriminative
fine-tuning), a per-batch schedule (warm-up, then cosine, step or one-cycle), optional bf16 autocast on CPU,
gradient clipping, class weights, early stopping on validation with restore of the best weights, a progress bar
with loss and metric per epoch, and a history. With a ``checkpoint_dir`` every complete epoch is saved (weights,
optimizer, schedule, RNG, history) so a killed run resumes where it stopped and ends with the same numbers.

The data side is two callables: ``train_batches(epoch)`` yields ``(inputs, targets)`` and must depend only on the
seed and the epoch (so a resumed run sees the same batches), and ``val_batches()`` yields the validation batches.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from transferlab.errors import UserError
from transferlab.progress import log, progress_bar

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "onecycle")


@dataclass
class TrainConfig:
    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    patience: int | None = 5
    monitor: str = "val_loss"
    clip_grad_norm: float | None = None
    label_smoothing: float = 0.0
    bf16: bool = False
    seed: int = 0

    def validate(self) -> None:
        if not self.lr > 0:
            raise UserError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        if self.monitor not in ("val_loss", "val_accuracy"):
            raise UserError(f"monitor must be val_loss or val_accuracy, got {self.monitor!r}")


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_optimizer(param_groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [g for g in param_groups if any(p.requires_grad for p in g["params"])]
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
        g.setdefault("lr", cfg.lr)
    wd = cfg.weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=wd)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=wd)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    return torch.optim.Adagrad(groups, lr=cfg.lr, weight_decay=wd)


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of every group's base learning rate at a given optimizer step."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "onecycle":
        # one cycle: rise from 1/25 to 1 over the first 30%, then cosine down to ~0
        peak = max(1, int(0.3 * total_steps))
        if step < peak:
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / peak)) / 2
        t = (step - peak) / max(1, total_steps - peak)
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * t)) / 2
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "cosine":
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if cfg.schedule == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // max(1, cfg.step_size))
    return 1.0


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _autocast(enabled: bool):  # noqa: ANN202
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def evaluate_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     loss_fn: nn.Module, bf16: bool = False) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the probabilities over all batches (model in eval mode)."""
    model.eval()
    total, n, correct, probs = 0.0, 0, 0, []
    with torch.inference_mode(), _autocast(bf16):
        for inputs, targets in batches:
            logits = model(inputs).float()
            total += float(loss_fn(logits, targets)) * len(targets)
            correct += int((logits.argmax(1) == targets).sum())
            n += len(targets)
            probs.append(torch.softmax(logits, 1).numpy())
    return total / max(n, 1), correct / max(n, 1), np.concatenate(probs) if probs else np.zeros((0, 0))


class Checkpointer:
    """Saves and restores the complete training state after each epoch (atomically: temp file, then rename)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "checkpoint.pt"

    def save(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        # our own file, plain tensors and numbers only
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def clear(self) -> None:
        if self.path.exists():
            self.path.unlink()


def train_loop(model: nn.Module, param_groups: list[dict[str, Any]],
               train_batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
               val_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]] | None,
               steps_per_epoch: int, cfg: TrainConfig, class_weights: torch.Tensor | None = None,
               checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False,
               progress: bool = True, desc: str = "training",
               on_epoch_start: Callable[[int], None] | None = None,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> History:
    """Train ``model`` in place; return the history. The best weights (by ``cfg.monitor``) are restored at the end.

    ``loss_fn(outputs, targets)`` replaces the cross-entropy for training (e.g. a contrastive loss on pairs); the
    outputs must still be (batch, classes) scores, since training accuracy is their argmax."""
    cfg.validate()
    seed_everything(cfg.seed)
    optimizer = make_optimizer(param_groups, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    total_steps = cfg.epochs * steps_per_epoch
    if loss_fn is None:
        loss_fn = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.label_smoothing)
    eval_loss_fn = nn.CrossEntropyLoss()
    history = History()
    best_score, best_state, bad_epochs, start_epoch, step = -math.inf, None, 0, 0, 0
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and resume:
        state = ckpt.load()
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history = History(**state["history"])
            best_score, bad_epochs = state["best_score"], state["bad_epochs"]
            best_state = state["best_model"]
            start_epoch, step = state["epoch"] + 1, state["step"]
            torch.set_rng_state(state["torch_rng"])
            log(f"resuming from the checkpoint after epoch {start_epoch} of {cfg.epochs}")
    bar = progress_bar(total=cfg.epochs, desc=desc, unit="epoch", enabled=progress, initial=start_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        if history.stopped_early:
            break
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        model.train()
        t0 = time.perf_counter()
        total, n, correct = 0.0, 0, 0
        for inputs, targets in train_batches(epoch):
            for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
                g["lr"] = base * lr_factor(step, total_steps, steps_per_epoch, cfg)
            with _autocast(cfg.bf16):
                logits = model(inputs)
                loss = loss_fn(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm:
                nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.clip_grad_norm)
            optimizer.step()
            step += 1
            total += float(loss.detach()) * len(targets)
            correct += int((logits.detach().argmax(1) == targets).sum())
            n += len(targets)
        row = {"epoch": epoch + 1, "train_loss": total / max(n, 1), "train_accuracy": correct / max(n, 1),
               "seconds": time.perf_counter() - t0}
        if val_batches is not None:
            val_loss, val_acc, _ = evaluate_batches(model, val_batches(), eval_loss_fn, cfg.bf16)
            row.update(val_loss=val_loss, val_accuracy=val_acc)
            score = -val_loss if cfg.monitor == "val_loss" else val_acc
            if score > best_score + 1e-6:
                best_score, bad_epochs, history.best_epoch = score, 0, epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
                if cfg.patience is not None and bad_epochs >= cfg.patience:
                    history.stopped_early = True
        history.epochs.append(row)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("train_loss", "val_loss", "val_accuracy")})
        if ckpt is not None:
            ckpt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "history": history.to_dict(), "best_score": best_score, "bad_epochs": bad_epochs,
                       "best_model": best_state, "epoch": epoch, "step": step, "torch_rng": torch.get_rng_state()})
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def class_weight_tensor(y: np.ndarray, n_classes: int, mode: str | None) -> torch.Tensor | None:
    """``balanced``: weights inversely proportional to class frequency; ``None``: no weights."""
    if mode in (None, "none"):
        return None
    if mode != "balanced":
        raise UserError(f"class_weight must be 'balanced' or none, got {mode!r}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = len(y) / (n_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def resample_indices(y: np.ndarray, mode: str | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of one epoch: all (shuffled), or over/under-sampled so every class appears equally often."""
    idx = np.arange(len(y))
    if mode in (None, "none"):
        return rng.permutation(idx)
    classes = np.unique(y)
    per_class = [idx[y == c] for c in classes]
    if mode == "over":
        target = max(len(p) for p in per_class)
        chosen = [rng.choice(p, target, replace=len(p) < target) for p in per_class]
    elif mode == "under":
        target = min(len(p) for p in per_class)
        chosen = [rng.choice(p, target, replace=False) for p in per_class]
    else:
        raise UserError(f"sampling must be 'over', 'under' or none, got {mode!r}")
    return rng.permutation(np.concatenate(chosen))
