"""The one training loop, used by every strategy that trains a network (image heads and whole networks, text later).

What it does, in order: optimizer over parameter groups (each with its own learning rate, for discriminative
fine-tuning), a per-batch schedule (warm-up, then cosine, step or one-cycle), optional bf16 autocast on CPU,
gradient clipping, class weights, early stopping on validation with restore of the best weights, a progress bar
with loss and metric per epoch, and a history. With a ``checkpoint_dir`` every complete epoch is saved (weights,
optimizer, schedule, RNG, history) so a killed run resumes where it stopped and ends with the same numbers.

The data side is two callables: ``train_batches(epoch)`` yields ``(inputs, targets)`` and must depend only on the
seed and the epoch (so a resumed run sees the same batches), and ``val_batches()`` yields the validation batches.

What is learned is the objective's business, not the loop's: an :class:`Objective` turns a batch into its loss and
its metrics (sums over the batch). :class:`Classification` (cross-entropy, accuracy) is one case;
:class:`PairSimilarity` (SetFit's cosine regression on pairs) is another; a span head or several label columns add
their own. The history records ``train_<metric>`` and ``val_<metric>`` for every metric the objective reports, and
early stopping watches ``cfg.monitor`` (``val_loss`` by default; a ``*loss`` is minimised, anything else maximised).
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

from transferlab._torch import to_device, torch_device
from transferlab.errors import UserError
from transferlab.progress import log, progress_bar
from transferlab.tasks import Task

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "onecycle")


def check_patience(patience: int | None) -> None:
    """Early stopping after ``patience`` epochs without improvement: a whole number >= 1, or None (never stop)."""
    if patience is not None and int(patience) < 1:
        raise UserError(f"patience (epochs without improvement before stopping) must be >= 1, or null to train "
                        f"every epoch, got {patience}")


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
        check_patience(self.patience)
        if not self.monitor.startswith("val_"):
            raise UserError(f"monitor must be a validation metric (val_loss, val_accuracy, ...), got {self.monitor!r}")


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


class Objective:
    """What a network learns: the loss to minimise and the metrics to report, from the model's output on a batch.

    ``batch_loss`` runs the model (inside the loop's autocast) and returns the loss to back-propagate, the metric
    *sums* over the batch (``{"loss": loss * n, "accuracy": correct}``) and the batch size; the loop averages the sums
    over the epoch. ``predict`` turns outputs into what evaluation returns beside the metrics (probabilities)."""

    def batch_loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor,  # noqa: ANN401
                   training: bool) -> tuple[torch.Tensor, dict[str, float], int]:
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().cpu().numpy()


class Classification(Objective):
    """One label out of ``n`` classes: cross-entropy (class weights and label smoothing while training, plain on
    validation) and accuracy; predictions are softmax probabilities."""

    def __init__(self, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        self.train_loss = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
        self.eval_loss = nn.CrossEntropyLoss()

    def batch_loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor,  # noqa: ANN401
                   training: bool) -> tuple[torch.Tensor, dict[str, float], int]:
        logits = model(inputs)
        loss = (self.train_loss if training else self.eval_loss)(logits.float(), targets)
        n = len(targets)
        self.last_outputs = logits.detach()
        return loss, {"loss": float(loss.detach()) * n,
                      "accuracy": int((logits.detach().argmax(1) == targets).sum())}, n

    def predict(self, outputs: torch.Tensor) -> np.ndarray:
        return torch.softmax(outputs.float(), 1).cpu().numpy()


class PairSimilarity(Objective):
    """Pairs of inputs whose embeddings should be alike (target 1) or not (0): the model returns the cosine
    similarity of each pair, the loss is its squared error against the target (SetFit's CosineSimilarityLoss)."""

    def batch_loss(self, model: nn.Module, inputs: Any, targets: torch.Tensor,  # noqa: ANN401
                   training: bool) -> tuple[torch.Tensor, dict[str, float], int]:
        cos = model(inputs).float()
        loss = ((cos - targets.to(cos.dtype)) ** 2).mean()
        n = len(targets)
        self.last_outputs = cos.detach()
        return loss, {"loss": float(loss.detach()) * n}, n


OBJECTIVES: dict[str, Callable[..., Objective]] = {  # task kind -> its objective (transferlab.tasks.KINDS)
    "classification": lambda class_weights=None, label_smoothing=0.0: Classification(class_weights, label_smoothing),
}


def objective_for(task: Task, **options: Any) -> Objective:  # noqa: ANN401
    """The training objective of a task's kind (classification: cross-entropy and accuracy)."""
    if task.kind not in OBJECTIVES:
        raise UserError(f"no training objective for task kind {task.kind!r}")
    return OBJECTIVES[task.kind](**options)


def evaluate_batches(model: nn.Module, batches: Iterable[tuple[Any, torch.Tensor]], objective: Objective,
                     bf16: bool = False) -> tuple[dict[str, float], np.ndarray]:
    """Mean metrics over all batches (model in eval mode) and the objective's predictions, in order."""
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    sums: dict[str, float] = {}
    n, outputs = 0, []
    with torch.inference_mode(), _autocast(bf16):
        for inputs, targets in batches:
            if device.type != "cpu":
                inputs, targets = to_device(inputs, str(device)), to_device(targets, str(device))
            _, metrics, size = objective.batch_loss(model, inputs, targets, training=False)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            n += size
            outputs.append(objective.predict(objective.last_outputs))  # type: ignore[attr-defined]
    means = {k: v / max(n, 1) for k, v in sums.items()}
    return means, np.concatenate(outputs) if outputs else np.zeros((0, 0))


def run_identity(name: str, params: dict[str, Any], data: Iterable[str]) -> str:
    """A digest of a strategy's parameters (less ``checkpoint_dir`` and ``resume``) and of its data (one string per
    example): a checkpoint is only resumed by the same run."""
    import hashlib
    import json

    h = hashlib.sha256()
    for item in data:
        h.update(item.encode("utf-8", "surrogatepass") + b"\x00")
    kept = {k: v for k, v in params.items() if k not in ("checkpoint_dir", "resume")}
    h.update(json.dumps({"strategy": name, "params": kept}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def prepare_checkpoints(checkpoint_dir: str | os.PathLike[str] | None, identity: str, resume: bool) -> Path | None:
    """The run's checkpoint folder (None: no checkpoints). With ``resume`` and a folder from the same run
    (:func:`run_identity`) it is kept as it is; a folder from another run is an error (nothing is deleted); without
    ``resume`` it starts empty."""
    import json
    import shutil

    if not checkpoint_dir:
        return None
    directory = Path(checkpoint_dir)
    marker = directory / "run.json"
    if resume and marker.exists():
        if json.loads(marker.read_text()).get("identity") != identity:
            raise UserError(f"{directory}: the checkpoint is from a different run (other data or parameters); "
                            "run again without --resume to start over")
        return directory
    if resume:
        log(f"no checkpoint in {directory}: starting from the beginning")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    marker.write_text(json.dumps({"identity": identity}))
    return directory


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
               objective: Objective | None = None, checkpoint_every_s: float | None = None) -> History:
    """Train ``model`` in place; return the history. The best weights (by ``cfg.monitor``) are restored at the end.

    ``objective`` says what is learned (default: :class:`Classification` with ``class_weights`` and the config's
    label smoothing). With ``checkpoint_dir`` the complete state is saved after every epoch and, with
    ``checkpoint_every_s``, only once that many seconds have passed since the last save (or the start), within an
    epoch or at its end (for runs of one long epoch: a short run writes nothing); ``resume`` goes on from the last
    save, skipping the batches already trained (``train_batches`` must give the same batches for an epoch every
    time), and ends with the same model."""
    cfg.validate()
    seed_everything(cfg.seed)
    device = torch_device()
    model.to(device)  # parameters move in place: param_groups still hold them
    if class_weights is not None:
        class_weights = class_weights.to(device)
    optimizer = make_optimizer(param_groups, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    total_steps = cfg.epochs * steps_per_epoch
    if objective is None:
        objective = Classification(class_weights, cfg.label_smoothing)
    history = History()
    best_score, best_state, bad_epochs, start_epoch, step = -math.inf, None, 0, 0, 0
    skip, sums, n, done_s = 0, {}, 0, 0.0  # within an epoch: batches trained before the resumed save, their metrics
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
            if "batches_done" in state:  # saved within an epoch
                start_epoch, skip = state["epoch"], int(state["batches_done"])
                sums, n, done_s = dict(state["partial_sums"]), int(state["partial_n"]), float(state["partial_s"])
                log(f"resuming epoch {start_epoch + 1} of {cfg.epochs} after batch {skip} of {steps_per_epoch} "
                    "from the checkpoint")
            else:
                log(f"resuming from the checkpoint after epoch {start_epoch} of {cfg.epochs}")

    def snapshot(epoch: int, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history.to_dict(),
                "best_score": best_score, "bad_epochs": bad_epochs, "best_model": best_state, "epoch": epoch,
                "step": step, "torch_rng": torch.get_rng_state(), **extra}

    # batches, not epochs: a run of one long epoch (text_fewshot) moves too; the epoch's figures in the postfix
    bar = progress_bar(total=cfg.epochs * steps_per_epoch, desc=desc, unit="batch", enabled=progress,
                       initial=start_epoch * steps_per_epoch + skip)
    last_save = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        if history.stopped_early:
            break
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        model.train()
        t0 = time.perf_counter()
        if epoch != start_epoch:
            skip, sums, n, done_s = 0, {}, 0, 0.0
        for b, (inputs, targets) in enumerate(train_batches(epoch)):
            if b < skip:  # trained before the save this run resumed from
                continue
            if device != "cpu":
                inputs, targets = to_device(inputs, device), to_device(targets, device)
            for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
                g["lr"] = base * lr_factor(step, total_steps, steps_per_epoch, cfg)
            with _autocast(cfg.bf16):
                loss, metrics, size = objective.batch_loss(model, inputs, targets, training=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm:
                nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.clip_grad_norm)
            optimizer.step()
            step += 1
            bar.update(1)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            n += size
            if (ckpt is not None and checkpoint_every_s is not None and b + 1 < steps_per_epoch
                    and time.perf_counter() - last_save >= checkpoint_every_s):
                ckpt.save(snapshot(epoch, batches_done=b + 1, partial_sums=dict(sums), partial_n=n,
                                   partial_s=done_s + time.perf_counter() - t0))
                last_save = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch + 1, **{f"train_{k}": v / max(n, 1) for k, v in sums.items()},
                                 "seconds": done_s + time.perf_counter() - t0}
        if val_batches is not None:
            val, _ = evaluate_batches(model, val_batches(), objective, cfg.bf16)
            row.update({f"val_{k}": v for k, v in val.items()})
            if cfg.monitor not in row:
                raise UserError(f"monitor {cfg.monitor!r}: the objective reports {', '.join(sorted(row))}")
            score = -row[cfg.monitor] if cfg.monitor.endswith("loss") else row[cfg.monitor]
            if score > best_score + 1e-6:
                best_score, bad_epochs, history.best_epoch = score, 0, epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
                if cfg.patience is not None and bad_epochs >= cfg.patience:
                    history.stopped_early = True
        history.epochs.append(row)
        bar.set_postfix({"epoch": epoch + 1, **{k: f"{v:.3f}" for k, v in row.items()
                                                if k in ("train_loss", "val_loss", "val_accuracy")}})
        if ckpt is not None and (checkpoint_every_s is None or time.perf_counter() - last_save >= checkpoint_every_s):
            ckpt.save(snapshot(epoch))
            last_save = time.perf_counter()
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu")  # saved, exported and predicted from the CPU
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
