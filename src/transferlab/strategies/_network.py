"""What every strategy that trains a whole image network shares: the network, the image batches, the stages.

* :class:`~transferlab.nn.image.ClassifierNet` (in :mod:`transferlab.nn.image`, with ``build_net`` and
  ``predict_paths``, so that a saved network loads without this training code; imported back here): a backbone
  plus a new linear head (with dropout), BatchNorm frozen while a pretrained backbone is fine-tuned.
* :class:`ImageBatches`: decodes with Pillow (``load_image``), keeps decoded images resized to the crop's
  pre-size in memory as uint8 when the dataset is small, augments on the fly (random resized crop, horizontal
  flip, colour jitter, all Pillow/NumPy) and builds the next batch in a thread while the network trains on the
  current one. A batch depends only on (seed, stage, epoch), so a resumed run sees exactly the same batches.
* :class:`NetworkStrategy`: the estimator side. A subclass says which layer groups train in which stage
  (:meth:`NetworkStrategy.stages`); every stage goes through the one training loop with per-group learning rates.

The evaluation transform (shorter side to ``size / crop_pct``, centre crop) equals the backbone's
:class:`~transferlab.preprocessing.Preprocessing`, so a saved model predicts exactly as it was validated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from transferlab.backbones import get_backbone
from transferlab.data.images import load_image, stratified_split
from transferlab.errors import DataError, UserError
from transferlab.nn.image import ClassifierNet, build_net, center_crop, predict_paths, resize_shorter
from transferlab.preprocessing import Preprocessing
from transferlab.progress import log
from transferlab.strategies._fallback import can_be_beaten, set_probe_head, verdict
from transferlab.strategies.base import Strategy

CACHE_LIMIT_BYTES = 1_500_000_000  # decoded images kept in memory below this estimate


# --- the network (ClassifierNet and build_net live in transferlab.nn.image) -----------------------------------
def discriminative_param_groups(net: ClassifierNet, n_top_groups: int, lr: float, lr_ratio: float,
                                head_lr: float) -> list[dict[str, Any]]:
    """One optimizer group per trainable layer group: the top backbone group gets ``lr``, each earlier group the
    next one's rate divided by ``lr_ratio`` (fastai's ``slice``), the new head ``head_lr``."""
    groups = net.backbone_groups()
    out = []
    for k in range(n_top_groups):
        index = len(groups) - 1 - k
        params = [p for m in groups[index] for p in m.parameters()]
        out.append({"params": params, "lr": lr / lr_ratio**k, "name": f"group{index}"})
    out.reverse()
    out.append({"params": list(net.head.parameters()), "lr": head_lr, "name": "head"})
    return out


# --- images ----------------------------------------------------------------------------------------------------
def random_resized_crop(pixels: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.3, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
                        ) -> np.ndarray:
    h, w = pixels.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            break
    else:
        cw = ch = min(h, w)
        x0, y0 = (w - cw) // 2, (h - ch) // 2
    img = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    return np.asarray(img, dtype=np.uint8)


def colour_jitter(pixels: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    x = pixels.astype(np.float32) * b
    gray = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
    x = (x - gray.mean()) * c + gray.mean()
    gray = (x @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
    x = gray + (x - gray) * s
    return np.clip(x, 0, 255).astype(np.uint8)


AUGMENT_MODES = ("standard", "orientation", "none")


def augment_mode(value: bool | str) -> str:
    """``augment``: true/standard (random resized crop, horizontal flip, colour jitter), orientation (also vertical
    flips and quarter turns, for images with no up or down), false/none."""
    mode = value if isinstance(value, str) else ("standard" if value else "none")
    if mode not in AUGMENT_MODES:
        raise UserError(f"augment must be true, false or one of {', '.join(AUGMENT_MODES)}, got {value!r}")
    return mode


class ImageBatches:
    """Batches of one dataset for training (augmented) and evaluation (the backbone's transform)."""

    def __init__(self, paths: Sequence[str], targets: np.ndarray, prep: Preprocessing, batch_size: int,
                 augment: bool | str = True, seed: int = 0, cache: bool | None = None) -> None:
        self.paths = list(paths)
        self.targets = np.asarray(targets, np.int64)
        self.prep = prep
        self.batch_size = batch_size
        mode = augment_mode(augment)
        self.augment = mode != "none"
        self.orientation = mode == "orientation"
        self.seed = seed
        estimate = len(self.paths) * prep.resize * prep.resize * 3 * 4 // 3
        self.cache = estimate < CACHE_LIMIT_BYTES if cache is None else cache
        self._pixels: dict[int, np.ndarray] = {}

    def pixels(self, i: int) -> np.ndarray:
        cached = self._pixels.get(i)
        if cached is not None:
            return cached
        out = resize_shorter(load_image(self.paths[i], draft_size=self.prep.resize), self.prep)
        if self.cache:
            self._pixels[i] = out
        return out

    def _item(self, i: int, rng: np.random.Generator | None) -> np.ndarray:
        pixels = self.pixels(i)
        if rng is None:
            return center_crop(pixels, self.prep.size)
        x = random_resized_crop(pixels, self.prep.size, rng)
        if rng.random() < 0.5:
            x = x[:, ::-1]
        if self.orientation:  # no up or down in textures, aerial or microscope images: any of the 8 symmetries
            if rng.random() < 0.5:
                x = x[::-1]
            x = np.rot90(x, int(rng.integers(4)))
        return colour_jitter(np.ascontiguousarray(x), rng)

    def _batch(self, indices: np.ndarray, key: tuple[int, ...] | None) -> tuple[torch.Tensor, torch.Tensor]:
        # every item's randomness comes from (seed, key, position): independent of threads and timing
        items = [self._item(int(i), None if key is None else np.random.default_rng((self.seed, *key, pos)))
                 for pos, i in enumerate(indices)]
        x = torch.from_numpy(self.prep.normalize_batch(np.stack(items)))
        return x, torch.from_numpy(self.targets[indices])

    def _prefetched(self, chunks: list[tuple[np.ndarray, tuple[int, ...] | None]]
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Build batch k+1 in a thread while the caller trains on batch k (Pillow releases the GIL)."""
        if not chunks:
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(self._batch, *chunks[0])
            for k in range(len(chunks)):
                batch = future.result()
                if k + 1 < len(chunks):
                    future = pool.submit(self._batch, *chunks[k + 1])
                yield batch

    def train_batches(self, order: np.ndarray, key: tuple[int, ...]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        chunks = [(order[s : s + bs], (*key, s) if self.augment else None) for s in range(0, len(order), bs)]
        return self._prefetched(chunks)

    def eval_batches(self, indices: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = max(self.batch_size, 32)
        return self._prefetched([(indices[s : s + bs], None) for s in range(0, len(indices), bs)])


# --- the estimator ---------------------------------------------------------------------------------------------
HEAD_INITS = ("random", "probe")


def probe_head(net: ClassifierNet, spec_name: str, prep: Preprocessing, paths: Sequence[str], labels: np.ndarray,
               n_classes: int, seed: int) -> None:
    """LP-FT (Kumar et al., 2022): start the new head from a logistic-regression probe on the frozen features.

    A random head sends large, random gradients into the pretrained layers during the first steps and distorts
    the features before the head has learnt anything; a head that already classifies well lets fine-tuning
    start from the headless solution and only improve on it. The probe uses the shared feature cache (centre
    crop at the training resolution), so it costs nothing when ``headless`` already ran on the same images.
    """
    from transferlab import runtime
    from transferlab.features.images import FeatureExtractor

    extractor = FeatureExtractor(spec_name, cache=runtime.get_cache(), input_size=prep.size,
                                 progress=runtime.show_progress())
    result = extractor.extract(list(paths), outputs=("features",), desc="linear probe for the head")
    if result.failures:
        i, reason = next(iter(result.failures.items()))
        raise DataError(f"{paths[i]}: {reason}")
    set_probe_head(net.head, result.arrays["features"], labels[np.asarray(result.ok, np.int64)], n_classes, seed)


SCHEDULE_STEPS = 120  # optimizer steps the epoch rule aims for
SCHEDULE_EPOCHS = (2, 8)  # fewest and most passes it gives
REFERENCE_SIZE = 1000  # training images from which a strategy's reference learning rate applies unchanged

SCHEDULE_DOC = """Schedule rule (every parameter left at ``None``; a value you pass wins), from the number ``n`` of
training images after the held-out part, fixed before any benchmark was run on it:

* ``epochs``: enough passes for about 120 optimizer steps, ``ceil(120 / steps per epoch)``, at least 2 and at most 8
  (early stopping on the held-out part still ends sooner). Fine-tuning needs a number of updates, not of passes:
  200 images get 8 passes, 20,000 get 2.
* ``lr``: the strategy's reference rate times ``sqrt(n / 1000)`` below 1,000 images. A small set's gradient is
  noisier and has less to teach the pretrained layers, so they move less.
* with the head from the probe (``head_init=probe``, LP-FT): ``head_lr = lr`` and ``label_smoothing = 0``. The
  head already sits at the probe's optimum; a ten times faster head or smoothed targets would first pull it away,
  sending gradients that carry nothing about the task into the pretrained layers. With a random head:
  ``head_lr = 10 * lr`` and ``label_smoothing = 0.1``.
* ``gradual_unfreeze``: with the probe head there is no head-only stage (the probe is that stage, solved exactly;
  a random head trains alone for 2 epochs); ``n_stages = 1 + floor(log2(n / 100))`` groups, one more each time the
  training set doubles beyond 100 images (at least 1, at most all); each stage before the last trains 1 epoch, the
  last the rest of the ``epochs`` budget (at least 1).

The chosen schedule is printed and saved in ``history.json`` (``schedule``)."""


def schedule_rule(n_train: int, steps_per_epoch: int, reference_lr: float, head_from_probe: bool) -> dict[str, Any]:
    """``epochs``, ``lr``, ``head_lr`` and ``label_smoothing`` from the training set's size (see
    :data:`SCHEDULE_DOC`)."""
    lo, hi = SCHEDULE_EPOCHS
    epochs = int(min(hi, max(lo, -(-SCHEDULE_STEPS // max(1, steps_per_epoch)))))
    lr = float(reference_lr * min(1.0, np.sqrt(max(1, n_train) / REFERENCE_SIZE)))
    return {"epochs": epochs, "lr": lr, "head_lr": lr if head_from_probe else 10 * lr,
            "label_smoothing": 0.0 if head_from_probe else 0.1}


@dataclass
class Stage:
    """One call of the training loop: which backbone groups train, for how many epochs, at which rates."""

    name: str
    n_top_groups: int
    epochs: int


AUTO_BACKBONE = "auto"  # the fine-tuning strategies' default: the image backbone rank puts first on the training set
RANK_SAMPLE = 2000  # backbone=auto ranks on at most this many training images (stratified)

BACKBONE_DOC = """Backbone rule (``backbone=auto``, the default of ``finetune``, ``finetune_top`` and
``gradual_unfreeze``): the installed image backbone that ``transferlab rank`` puts first on the training images
(LogME on each one's frozen features; at most 2,000 images, stratified), the same ranking the default ``train`` uses
for its frozen-feature ensemble. The network that is fine-tuned is the one whose features already separate the
classes best, and the probe it starts from (and falls back to) is then the best linear probe on offer. The ranking
is printed and saved (``backbone_ranking`` in ``history.json``); name a backbone to skip it."""


class NetworkStrategy(Strategy):
    """Shared fitting, prediction and saving of the strategies that train a whole image network.

    Subclasses store their parameters (see :data:`COMMON_DEFAULTS` for the shared ones) and define :meth:`stages`.
    """

    pretrained = True
    reference_lr = 1e-4  # the backbone's learning rate from REFERENCE_SIZE training images on (schedule_rule)

    @classmethod
    def backbones_needed(cls, backbone: str) -> list[str]:
        """The backbones a fit may read features of: every installed image backbone for ``auto``, else the one."""
        from transferlab.backbones import list_backbones

        if backbone == AUTO_BACKBONE:
            return [b.name for b in list_backbones("image") if b.is_installed()]
        get_backbone(backbone)
        return [backbone]

    def choose_backbone(self, X: Any) -> str:  # noqa: N803
        """The backbone this fit trains: ``self.backbone``, or with ``auto`` the one ranked first (BACKBONE_DOC)."""
        self.backbone_ranking_: list[dict[str, Any]] | None = None
        if self.backbone != AUTO_BACKBONE:
            get_backbone(self.backbone)
            return str(self.backbone)
        if not self.pretrained:
            raise UserError(f"{self.name} trains from random weights, so there are no pretrained features to rank: "
                            "name the architecture with --backbone (see `transferlab models`)")
        from transferlab.features.ranking import rank_backbones, sample

        pool = self.backbones_needed(AUTO_BACKBONE)
        if len(pool) == 1:
            return pool[0]
        rows = rank_backbones(sample(X, RANK_SAMPLE, self.seed), pool, seed=self.seed, task="image")
        self.backbone_ranking_ = [{"backbone": r["backbone"], "logme": float(r["logme"])} for r in rows]
        chosen = rows[0]["backbone"]
        log(f"{self.name}: backbone {chosen}, first by transferability on the training images (LogME "
            + ", ".join(f"{r['backbone']} {r['logme']:.3f}" for r in rows)
            + "); --backbone NAME fine-tunes another")
        return str(chosen)

    def stages(self, n_groups: int, n_train: int) -> list[Stage]:
        """The training stages; ``self.schedule_`` (the resolved schedule) is set when this is called."""
        raise NotImplementedError

    def resolve_schedule(self, n_train: int, steps_per_epoch: int) -> dict[str, Any]:
        """The parameters this fit trains with: those left at ``None`` from :func:`schedule_rule`."""
        rule = schedule_rule(n_train, steps_per_epoch, self.reference_lr,
                             getattr(self, "head_init", "random") == "probe")
        out = {k: (rule[k] if getattr(self, k) is None else getattr(self, k)) for k in rule}
        out["epochs"] = int(out["epochs"])
        out["from_rule"] = sorted(k for k in rule if getattr(self, k) is None)
        return out

    def _param_groups(self, net: ClassifierNet, stage: Stage) -> list[dict[str, Any]]:
        sched = self.schedule_
        return discriminative_param_groups(net, stage.n_top_groups, sched["lr"], getattr(self, "lr_ratio", 1.0),
                                           sched["head_lr"])

    def _check_params(self) -> None:
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"{name} must be > 0, got {value}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise UserError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.input_size is not None and not 32 <= int(self.input_size) <= 1024:
            raise UserError(f"input_size must be between 32 and 1024 pixels, got {self.input_size}")
        if not 0 <= self.val_fraction < 0.9:
            raise UserError(f"val_fraction must be in [0, 0.9), got {self.val_fraction}")
        head_init = getattr(self, "head_init", "random")
        if head_init not in HEAD_INITS:
            raise UserError(f"head_init must be one of {', '.join(HEAD_INITS)}, got {head_init!r}")
        augment_mode(self.augment)
        if self.sampling not in (None, "none", "over", "under"):
            raise UserError(f"sampling must be 'over', 'under' or none, got {self.sampling!r}")
        from transferlab.training import TrainConfig

        TrainConfig(epochs=1, lr=self.lr or 1e-4, optimizer=self.optimizer, schedule=self.schedule,
                    patience=self.patience).validate()
        if self.epochs is not None and int(self.epochs) < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")

    def preprocessing(self, backbone: str) -> Preprocessing:
        """The image transform of ``backbone`` (the one this fit trains) at ``input_size`` when that is set."""
        prep = get_backbone(backbone).preprocessing
        return prep.with_size(int(self.input_size)) if self.input_size else prep

    def _prepare_checkpoints(self, paths: Sequence[str]) -> Path | None:
        from transferlab.training import prepare_checkpoints, run_identity

        return prepare_checkpoints(self.checkpoint_dir, run_identity(self.name, self.get_params(), paths),
                                   bool(self.resume))

    def fit(self, X: Any, y: Any = None) -> NetworkStrategy:  # noqa: N803
        from transferlab import runtime
        from transferlab._torch import set_torch_threads
        from transferlab.training import TrainConfig, class_weight_tensor, resample_indices, seed_everything, train_loop

        self._check_params()
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        backbone = self.backbone_ = self.choose_backbone(X)
        self.backbones_ = [backbone]
        prep = self.preprocessing(backbone)
        set_torch_threads()
        seed_everything(self.seed)
        net = build_net(backbone, len(classes), self.dropout, pretrained=self.pretrained)
        tr, va = (stratified_split([str(v) for v in labels], self.val_fraction, self.seed)
                  if self.val_fraction > 0 else (list(range(len(labels))), []))
        tr_idx, va_idx = np.asarray(tr, np.int64), np.asarray(va, np.int64)
        data = ImageBatches(X.paths, labels, prep, int(self.batch_size), self.augment, self.seed)
        ckpt_root = self._prepare_checkpoints(X.paths)
        probe: dict[str, Any] | None = None
        if getattr(self, "head_init", "random") == "probe":
            probe_head(net, backbone, prep, [X.paths[i] for i in tr_idx], labels[tr_idx], len(classes),
                       self.seed)
            if len(va_idx):  # the probe is the fallback: what fine-tuning must beat on the held-out part of train
                probe = {"metrics": self._held_out(net, data, va_idx)}
        skipped = probe is not None and not can_be_beaten(probe["metrics"]["errors"])
        if probe is not None and not skipped:  # the pretrained network, to come back to if the probe is kept
            probe["state"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        steps = -(-len(resample_indices(labels[tr_idx], self.sampling, np.random.default_rng(0))) // self.batch_size)
        self.schedule_ = self.resolve_schedule(len(tr_idx), steps)
        stages = self.stages(len(net.backbone_groups()), len(tr_idx))
        planned = [{"name": st.name, "trainable_groups": st.n_top_groups, "epochs": st.epochs} for st in stages]
        self.schedule_["stages"] = [] if skipped else planned
        if skipped:  # what would have run, kept apart from what did (history.json)
            self.schedule_["planned_stages"] = planned
            stages = []
        else:
            log(f"{self.name}: schedule for {len(tr_idx)} training images ({steps} steps per epoch): "
                + ", ".join(f"{st.name} {st.epochs} epoch{'s' * (st.epochs != 1)}" for st in stages)
                + f"; lr {self.schedule_['lr']:.2g}, head_lr {self.schedule_['head_lr']:.2g}, label smoothing "
                f"{self.schedule_['label_smoothing']:g}"
                + (f" ({', '.join(self.schedule_['from_rule'])} from the data-size rule)"
                   if self.schedule_['from_rule'] else ""))
        weights = class_weight_tensor(labels[tr_idx], len(classes), self.class_weight)
        histories = []
        for s, stage in enumerate(stages):
            net.set_trainable(stage.n_top_groups)

            def train_batches(epoch: int, s: int = s) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
                rng = np.random.default_rng((self.seed, s, epoch))
                order = tr_idx[resample_indices(labels[tr_idx], self.sampling, rng)]
                return data.train_batches(order, (s, epoch))

            cfg = TrainConfig(epochs=stage.epochs, lr=self.schedule_["lr"], optimizer=self.optimizer,
                              weight_decay=self.weight_decay, schedule=self.schedule,
                              warmup_epochs=self.warmup_epochs, patience=self.patience if len(va_idx) else None,
                              label_smoothing=self.schedule_["label_smoothing"], bf16=bool(self.bf16),
                              seed=self.seed + s)
            history = train_loop(
                net, self._param_groups(net, stage), train_batches,
                (lambda: data.eval_batches(va_idx)) if len(va_idx) else None, steps, cfg, class_weights=weights,
                checkpoint_dir=None if ckpt_root is None else ckpt_root / f"stage{s}", resume=bool(self.resume),
                progress=runtime.show_progress(), desc=f"{self.name}: {stage.name}")
            histories.append({"stage": stage.name, "trainable_groups": stage.n_top_groups, **history.to_dict()})
        self.probe_check_: dict[str, Any] | None = None
        if probe is not None:
            tuned = None if skipped else self._held_out(net, data, va_idx)
            kept, self.probe_check_, line = verdict(probe["metrics"]["errors"], None if tuned is None
                                                    else tuned["errors"], "images", "network")
            self.probe_check_.update(  # the held-out accuracy and loss of each
                probe={k: v for k, v in probe["metrics"].items() if k != "errors"},
                fine_tuned=None if tuned is None else {k: v for k, v in tuned.items() if k != "errors"})
            if kept == "probe":  # the pretrained network again, its probe refitted on every training image
                if not skipped:
                    net.load_state_dict(probe["state"])
                probe_head(net, backbone, prep, list(X.paths), labels, len(classes), self.seed)
                log(f"{self.name}: kept the linear probe, refitted on all {len(labels)} training images "
                    f"(fine-tuning must be significantly better): {line}")
            else:
                log(f"{self.name}: kept the fine-tuned network: {line}")
        net.eval()
        self.net_ = net
        self.classes_ = list(classes)
        self.history_ = histories
        self.preprocessing_ = prep
        return self

    @staticmethod
    def _held_out(net: ClassifierNet, data: ImageBatches, va_idx: np.ndarray) -> dict[str, Any]:
        """Accuracy, (unsmoothed) cross-entropy and which images are wrong (``errors``, 0/1 per image) of ``net``
        on the held-out training images."""
        from transferlab.training import Classification, evaluate_batches

        metrics, proba = evaluate_batches(net, data.eval_batches(va_idx), Classification())
        targets = np.asarray(data.targets)[va_idx]
        return {"val_accuracy": float(metrics["accuracy"]), "val_loss": float(metrics["loss"]),
                "errors": [int(v) for v in proba.argmax(1) != targets]}

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        proba, ok, failures = predict_paths(self.net_, self.preprocessing_, list(X.paths))
        if failures:
            i, reason = next(iter(failures.items()))
            raise DataError(f"{X.paths[i]}: {reason}")
        return proba

    def save_weights(self, directory: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        self.check_is_fitted()
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))
        (directory / "model.safetensors").chmod(0o644)
        (directory / "history.json").write_text(json.dumps(
            {"stages": self.history_, "schedule": getattr(self, "schedule_", None),
             "probe_check": getattr(self, "probe_check_", None),
             "backbone_ranking": getattr(self, "backbone_ranking_", None)}, indent=2))
        return {"kind": "network", "file": "model.safetensors", "backbone": self.backbone_,
                "n_classes": len(self.classes_), "dropout": self.dropout, "freeze_bn": self.pretrained,
                "preprocessing": self.preprocessing_.to_dict()}


COMMON_DOC = """Shared parameters: ``backbone`` (a name from ``transferlab models``; ``auto``, the default of the
fine-tuning strategies, ranks them first: see the backbone rule below), ``epochs``, ``lr`` (backbone), ``head_lr``
(new head), ``optimizer``, ``schedule``,
``warmup_epochs``, ``weight_decay``, ``batch_size``, ``input_size`` (pixels; larger helps fine-grained data),
``augment`` (true, ``orientation``: also vertical flips and quarter turns, for textures, aerial or
microscope images; false), ``dropout``, ``label_smoothing``, ``class_weight`` (``balanced``), ``sampling``
(``over``/``under``),
``bf16``, ``val_fraction`` (stratified hold-out of train for early stopping), ``patience``, ``seed``,
``checkpoint_dir`` and ``resume`` (set by ``transferlab train --out DIR [--resume]``), ``head_init``
(``probe``, the default: start the head from a logistic-regression probe on the cached frozen features, the
LP-FT recipe, which keeps fine-tuning from wrecking good features on small data, and keep that probe unless the
fine-tuned network is significantly better on the held-out part of train (``val_fraction``; McNemar's exact test,
one-sided, 5%; when the probe misses fewer than 5 held-out images no network could pass that test, so
fine-tuning is skipped and the log says so); ``random``: a random head and no fallback; not for ``from_scratch``).

""" + SCHEDULE_DOC + "\n\n" + BACKBONE_DOC
