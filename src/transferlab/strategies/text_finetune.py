"""text_finetune: all-MiniLM-L6-v2 + mean pooling + a new linear head, fine-tuned end to end.

AdamW, ``lr`` (default 5e-5) for the transformer and ``head_lr`` for the head, linear warm-up over
``warmup_epochs`` then cosine decay, ``epochs`` (default 2) over batches of ``batch_size`` (32) texts of similar
length (far less padding, about 2x faster on CPU), texts cut at ``max_length`` tokens (64 suits sentence-length
data such as sst2; use 128-256 for news). The word-embedding matrix (half of MiniLM's 22.7 M parameters) stays frozen
unless ``train_word_embeddings=True``: it saves a third of the step time and changes accuracy little.

``gradual=True`` unfreezes as ULMFiT does: stage 1 trains the head and the top layer group, each further stage one
more group down (groups: two transformer layers each, then the embeddings), one epoch per stage except the last,
which runs ``epochs``; each group's rate is the one above divided by ``lr_ratio`` (2.6). Without ``gradual``,
``lr_ratio`` > 1 still gives lower layers smaller rates (layer-wise decay).

``train_layers`` (None: all of them): only the top ``train_layers`` transformer layers (and the head) train; the
layers below run once over the texts and their outputs are kept (float16: tokens x width x 2 bytes per text, ~0.5 GB
for sst2's 6,920 sentences on mpnet; in memory up to a quarter of the memory available, beyond that in a temporary
file) and read by every epoch, so a step runs only the top layers, with no dropout below them. mpnet's top 4 of
12: about 3x faster per step, which is what lets mpnet train on a CPU without bf16 matrix units. Not with
``gradual`` (which reaches the bottom layers).

A stratified ``val_fraction`` of train is held out for early stopping and the best epoch's weights are kept.
``checkpoint_dir`` (set by ``transferlab train --out DIR``): every epoch is saved there, and the frozen bottom's
outputs too under ``train_layers``; ``resume=True`` (``--resume``) continues a killed run from its last complete
epoch, without the bottom's pass, and ends with the same model.

``head_init="probe"`` (the default; LP-FT, as for the image networks): the head starts as a logistic-regression probe
on the pretrained body's mean-pooled embeddings of the training texts, and trains at the body's rate (``head_lr``
None means ``lr``), so the first steps do not send a random head's gradients into the pretrained layers. The probe
is the fallback: it is kept, refitted on every training text, unless on the held-out texts the fine-tuned model fixes
significantly more of its mistakes than it makes new ones (McNemar's exact test, one-sided, 5%); the verdict is
printed and saved in ``history.json``. When the probe misses fewer than 5 held-out texts no fine-tuned model could
pass that test, so fine-tuning is skipped (same model, minutes sooner) and the log says so. ``head_init="random"``:
a random head at ``head_lr`` 1e-3 (when None), no fallback.
``backbone`` is None for the packaged MiniLM, ``mpnet`` (all-mpnet-base-v2: 12 layers, 768 wide, much stronger), or a
folder from ``transferlab pretrain-text --method mlm`` (MiniLM adapted to your own unlabelled texts). ``bf16=True``
trains (and predicts) under CPU bfloat16 autocast: ~2x faster on a CPU with bf16 matrix units (Intel AMX, or
AVX512-BF16: 2.5x for mpnet's whole body on the AMD EPYC here), ~10x slower without them. ``--strategy auto``
fine-tunes mpnet in bf16 for 2 epochs where the CPU has those units (sst2's 6,920 sentences: 7.7 min for the whole
command on AMX, test accuracy 0.928); without them mpnet's top 4 layers
(``train_layers=4``) for 2 epochs in float32 (sst2: 0.925, 13.7 min for the whole command on 2 AVX2 cores); MiniLM
for 3 epochs where mpnet is not installed.
Measured on these 2 CPU cores: about 0.6 s per batch of 32 sst2 sentences when the machine is otherwise idle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.progress import log
from transferlab.strategies._fallback import can_be_beaten, set_probe_head, verdict
from transferlab.strategies.base import Strategy


def pooled_embeddings(model: Any, make: Callable[[np.ndarray], Any], lengths: np.ndarray, bf16: bool = False,
                      batch_size: int = 64) -> np.ndarray:
    """The mean-pooled embeddings the head of ``model`` reads (no dropout), float32, one row per text; ``make``
    turns a chunk of text indices into the model's inputs (token ids, or cached hidden states)."""
    import torch

    from transferlab.nn.transformer import length_sorted_chunks

    out: np.ndarray | None = None
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for chunk in length_sorted_chunks(lengths, np.arange(len(lengths)), batch_size):
            rows = model.embed(make(chunk)).float().numpy()
            if out is None:
                out = np.zeros((len(lengths), rows.shape[1]), np.float32)
            out[chunk] = rows
    assert out is not None
    return out


def held_out_errors(model: Any, make: Callable[[np.ndarray], Any], lengths: np.ndarray, idx: np.ndarray,
                    labels: np.ndarray, bf16: bool = False) -> list[int]:
    """1 where ``model`` gets the text wrong, 0 where right, for the texts ``idx`` in that order."""
    import torch

    from transferlab.nn.transformer import length_sorted_chunks

    wrong = {}
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for chunk in length_sorted_chunks(lengths, idx, 64):
            pred = model(make(chunk)).float().argmax(1).numpy()
            wrong.update({int(i): int(p != labels[i]) for i, p in zip(chunk, pred, strict=True)})
    return [wrong[int(i)] for i in idx]


class TextFinetune(Strategy):
    name = "text_finetune"
    modality = "text"
    summary = "MiniLM (or backbone=mpnet) fine-tuned end to end (AdamW, warm-up + cosine), optionally gradually"

    def __init__(self, epochs: int = 2, lr: float = 5e-5, head_lr: float | None = None, batch_size: int = 32,
                 max_length: int = 64, warmup_epochs: float = 0.1, weight_decay: float = 0.01,
                 dropout: float = 0.1, gradual: bool = False, lr_ratio: float | None = None,
                 train_word_embeddings: bool = False, val_fraction: float = 0.1, patience: int | None = 2,
                 bf16: bool = False, backbone: str | None = None, head_init: str = "probe",
                 train_layers: int | None = None, seed: int = 0, checkpoint_dir: str | None = None,
                 resume: bool = False) -> None:
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.gradual = gradual
        self.lr_ratio = lr_ratio
        self.train_word_embeddings = train_word_embeddings
        self.val_fraction = val_fraction
        self.patience = patience
        self.bf16 = bf16
        self.backbone = backbone
        self.head_init = head_init
        self.train_layers = train_layers
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    def _head_lr(self) -> float:
        if self.head_lr is not None:
            return float(self.head_lr)
        return float(self.lr) if self.head_init == "probe" else 1e-3

    def _body_folder(self) -> str | None:
        from transferlab.backbones import transformer_folder

        return transformer_folder(self.backbone) if self.backbone else None

    def _check_params(self) -> None:
        from transferlab.training import check_patience

        if int(self.epochs) < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        check_patience(self.patience)
        if not self.lr > 0 or not self._head_lr() > 0:
            raise UserError(f"lr and head_lr must be > 0, got {self.lr} and {self.head_lr}")
        if self.head_init not in ("probe", "random"):
            raise UserError(f"head_init must be probe or random, got {self.head_init!r}")
        if not 8 <= int(self.max_length) <= 512:
            raise UserError(f"max_length must be between 8 and 512 tokens, got {self.max_length}")
        if int(self.batch_size) < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr_ratio is not None and not self.lr_ratio >= 1:
            raise UserError(f"lr_ratio must be >= 1, got {self.lr_ratio}")
        if self.train_layers is not None and int(self.train_layers) < 1:
            raise UserError(f"train_layers must be >= 1 (or None: all), got {self.train_layers}")
        if self.train_layers is not None and self.gradual:
            raise UserError("train_layers and gradual=True do not go together: gradual unfreezing reaches the "
                            "bottom layers, whose outputs train_layers computes once and keeps")
        if not 0 <= self.val_fraction < 0.9:
            raise UserError(f"val_fraction must be in [0, 0.9), got {self.val_fraction}")

    def _stages(self, net: Any, n_top: int) -> list[tuple[str, int, int]]:
        """(name, epochs, how many layer groups from the top train)."""
        n_groups = len(net.layer_groups())
        n_layers = len(net.body.encoder.layer)
        if n_top < n_layers:  # two layers per group, as layer_groups cuts them
            return [(f"top {n_top} of {n_layers} layers", int(self.epochs), -(-n_top // 2))]
        if not self.gradual:
            return [("end to end", int(self.epochs), n_groups)]
        stages = [(f"top {k} group(s)", 1, k) for k in range(1, n_groups)]
        return stages + [(f"all {n_groups} groups", int(self.epochs), n_groups)]

    def _param_groups(self, net: Any, n_top: int) -> list[dict[str, Any]]:
        groups = net.layer_groups()
        ratio = self.lr_ratio if self.lr_ratio is not None else (2.6 if self.gradual else 1.0)
        for p in net.body.parameters():
            p.requires_grad_(False)
        out = []
        for k in range(n_top):
            index = len(groups) - 1 - k
            params = []
            for module in groups[index]:
                for name, p in module.named_parameters():
                    if name.startswith("word_embeddings") and not self.train_word_embeddings:
                        continue
                    p.requires_grad_(True)
                    params.append(p)
            out.append({"params": params, "lr": self.lr / ratio**k, "name": f"group{index}"})
        out.reverse()
        out.append({"params": list(net.head.parameters()), "lr": self._head_lr(), "name": "head"})
        return out

    def fit(self, X: Any, y: Any = None) -> TextFinetune:  # noqa: N803
        import torch

        from transferlab import runtime
        from transferlab._torch import native_bf16, set_torch_threads
        from transferlab.data.images import stratified_split
        from transferlab.data.texts import texts_of
        from transferlab.nn.transformer import (
            TopOfClassifier,
            TransformerClassifier,
            bucketed_order,
            collate,
            collate_hidden,
            length_sorted_chunks,
            load_pretrained_body,
            lower_hidden_states,
            tokenize,
        )
        from transferlab.training import TrainConfig, prepare_checkpoints, run_identity, seed_everything, train_loop

        self._check_params()
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        texts = texts_of(X)
        ckpt = prepare_checkpoints(self.checkpoint_dir, run_identity(
            self.name, self.get_params(), (f"{c}\x00{t}" for c, t in zip(labels.tolist(), texts, strict=True))),
            bool(self.resume))
        set_torch_threads()
        seed_everything(self.seed)
        body, tokenizer = load_pretrained_body(self._body_folder())
        net = TransformerClassifier(body, len(classes), float(self.dropout))
        encoded = tokenize(tokenizer, texts, int(self.max_length))
        lengths = np.asarray([len(s) for s in encoded])
        tr, va = (stratified_split([str(v) for v in labels], self.val_fraction, self.seed)
                  if self.val_fraction > 0 else (list(range(len(labels))), []))
        tr_idx, va_idx = np.asarray(tr, np.int64), np.asarray(va, np.int64)
        bs = int(self.batch_size)
        bf16 = bool(self.bf16) and native_bf16()  # as predict_proba reads: the probe sees what predictions will
        n_layers = len(net.body.encoder.layer)
        n_top = int(self.train_layers) if self.train_layers is not None else n_layers
        model: Any = net
        make: Callable[[np.ndarray], Any] = lambda chunk: collate([encoded[i] for i in chunk])  # noqa: E731
        if n_top < n_layers:  # the frozen bottom runs once; its outputs feed every epoch of the top layers
            log(f"{self.name}: training the top {n_top} of {n_layers} transformer layers; the {n_layers - n_top} "
                "below run once over the texts and their outputs are kept (no dropout there)")
            cached = lower_hidden_states(net.body, encoded, n_layers - n_top, bf16=bf16,
                                         progress=runtime.show_progress(), desc=f"{self.name}: frozen layers",
                                         store=None if ckpt is None else ckpt / "lower_states.f16")
            model = TopOfClassifier(net, n_top)
            make = lambda chunk: collate_hidden([cached[i] for i in chunk])  # noqa: E731

        def val_batches() -> Iterator[tuple[Any, torch.Tensor]]:
            for chunk in length_sorted_chunks(lengths, va_idx, 64):
                yield make(chunk), torch.from_numpy(labels[chunk])

        steps = -(-len(tr_idx) // bs)
        probe: dict[str, Any] | None = None
        if self.head_init == "probe":  # LP-FT: the head starts as the probe on the pretrained body's embeddings
            features = pooled_embeddings(model, make, lengths, bf16)
            set_probe_head(net.head, features[tr_idx], labels[tr_idx], len(classes), self.seed)
            if len(va_idx):  # the fallback: what fine-tuning must beat on the held-out texts (their embeddings
                # are already in features: the probe head reads them, no second pass through the body)
                with torch.no_grad():
                    scores = net.head(torch.from_numpy(features[va_idx])).argmax(1).numpy()
                probe = {"errors": [int(v) for v in scores != labels[va_idx]], "features": features}
        skipped = probe is not None and not can_be_beaten(probe["errors"])
        if probe is not None and not skipped:  # the pretrained body, to come back to if the probe is kept
            probe["body"] = {k: v.detach().clone() for k, v in net.body.state_dict().items()}
        histories = []
        for s, (stage, epochs, n_groups) in enumerate([] if skipped else self._stages(net, n_top)):
            groups = self._param_groups(net, n_groups)

            def train_batches(epoch: int, s: int = s) -> Iterator[tuple[Any, torch.Tensor]]:
                rng = np.random.default_rng((self.seed, s, epoch))
                for chunk in bucketed_order(lengths, tr_idx, bs, rng):
                    yield make(chunk), torch.from_numpy(labels[chunk])

            cfg = TrainConfig(epochs=epochs, lr=self.lr, optimizer="adamw", weight_decay=self.weight_decay,
                              schedule="cosine", warmup_epochs=float(self.warmup_epochs),
                              patience=self.patience if len(va_idx) else None, clip_grad_norm=1.0,
                              bf16=bool(self.bf16), seed=self.seed + s)
            history = train_loop(model, groups, train_batches, val_batches if len(va_idx) else None, steps, cfg,
                                 checkpoint_dir=None if ckpt is None else ckpt / f"stage{s}",
                                 resume=bool(self.resume), progress=runtime.show_progress(),
                                 desc=f"{self.name}: {stage}")
            histories.append({"stage": stage, "trainable_groups": n_groups, **history.to_dict()})
        self.probe_check_: dict[str, Any] | None = None
        if probe is not None:
            tuned = None if skipped else held_out_errors(model, make, lengths, va_idx, labels, bf16)
            kept, self.probe_check_, line = verdict(probe["errors"], tuned, "texts", "model")
            if kept == "probe":  # the pretrained body again, its probe refitted on every training text
                if not skipped:
                    net.body.load_state_dict(probe["body"])
                set_probe_head(net.head, probe["features"], labels, len(classes), self.seed)
                log(f"{self.name}: kept the linear probe, refitted on all {len(labels)} training texts "
                    f"(fine-tuning must be significantly better): {line}")
            else:
                log(f"{self.name}: kept the fine-tuned model: {line}")
        for p in net.parameters():
            p.requires_grad_(False)
        net.eval()
        self.net_ = net
        self.tokenizer_ = tokenizer
        self.classes_ = list(classes)
        self.history_ = histories
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab._torch import native_bf16, set_torch_threads
        from transferlab.data.texts import texts_of
        from transferlab.nn.transformer import predict_transformer

        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        set_torch_threads()
        return predict_transformer(self.net_, self.tokenizer_, texts_of(X), int(self.max_length),
                                   bf16=bool(self.bf16) and native_bf16())

    def save_weights(self, directory: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        from transferlab.backbones.minilm import MINILM, minilm_path
        from transferlab.nn.transformer import copy_tokenizer_files

        self.check_is_fitted()
        save_file({k: v.detach().contiguous() for k, v in self.net_.state_dict().items()},
                  str(directory / "model.safetensors"))
        copy_tokenizer_files(self._body_folder() or minilm_path(), directory / "transformer")
        (directory / "history.json").write_text(json.dumps(
            {"stages": self.history_, "probe_check": getattr(self, "probe_check_", None)}, indent=2))
        return {"kind": "text_transformer", "file": "model.safetensors", "transformer": "transformer",
                "base": str(self.backbone) if self.backbone else MINILM, "pooling": "mean",
                "n_classes": len(self.classes_),
                "max_length": int(self.max_length), "dropout": float(self.dropout), "bf16": bool(self.bf16)}
