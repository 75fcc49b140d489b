"""qa_reader: an extractive question-answering reader, a span head fine-tuned with its transformer body.

A scikit-learn style estimator (``__init__`` stores parameters, ``fit(examples)`` returns ``self``, learned state
ends in ``_``), trained by the one training loop with :class:`SpanObjective` (cross-entropy on the start and on the
end token, averaged). ``X`` is a list of :class:`~transferlab.data.squad.QAExample` (from
:func:`~transferlab.data.squad.read_squad`).

Defaults, chosen to beat the plain recipe of issue 14 (all-MiniLM-L6-v2 + linear span head, AdamW 2e-4 one-cycle,
batch 16, windows 256 / stride 96, 2 epochs) within the same CPU time, without looking at test numbers:

- decoding is constrained (end >= start, at most ``max_answer_tokens``, context tokens only, n-best over windows);
- windows that do not contain the answer are mostly dropped (``negative_fraction`` of them, resampled each epoch,
  are kept so the reader still sees passages without the answer): fewer steps, and [CLS] no longer soaks up scores;
- batches of windows of similar length (dynamic padding): the mean SQuAD window is ~170 tokens, not 256;
- the word-embedding matrix stays frozen (``train_word_embeddings=False``; half of MiniLM's parameters, a third of
  the step time, as in ``text_finetune``), the head gets a larger rate (``head_lr``), warm-up then cosine decay;
- batches of 8 windows: twice the updates of 16 at the same CPU cost per window (0.22 s vs 0.24 s here). Chosen on
  4,000 questions of *other* SQuAD articles (train_full_subset, never test.json), 3 seeds each, among settings that
  cost no more CPU time than 2 epochs at 16: mean F1 56.3 vs 55.4 at 16. Freezing the lower layers
  (``frozen_layers``) to afford a third epoch lost 12-25 F1 there; a third epoch of the whole body gained 1.9 but
  costs 1.5x the time;
- no dropout in the encoder (``body_dropout=0``; None keeps the encoder's own 0.1): a step then takes ~0.6x the CPU
  time, so 3 epochs (``epochs=3``) cost less than 2 did. Adopted by the rule written in benchmarks/qa_nodrop.py
  before its run: 21.6 min here, selection-set F1 56.9 vs 55.7 (test.json, looked at afterwards: 62.3 vs 61.1).

- the body, teacher, epochs, rate and precision come from a recipe per body (:data:`RECIPES`, :meth:`QAReader.recipe`)
  unless given. The body is MiniLM: it answers >= 50 questions/s on two cores, which a 12-layer 768-wide body cannot
  (all-mpnet-base-v2: 11.8/s here). On a CPU with bf16 matrix units (AMX, not AVX512-BF16, ~2.5x slower) where mpnet
  is installed, the run first trains an mpnet reader (its own recipe: one epoch at 5e-5 in bf16 autocast; on all the
  questions it scores selection-set F1 71.5 vs 57.0 for MiniLM, benchmarks/qa_mpnet.py) on a third of the questions
  (``teacher_fraction``, set by the time budget: the teacher, its pass over the other questions' windows and two
  student epochs fit in the 30 minutes issue 14 allows) and distils it into MiniLM on the other two thirds
  (``teacher="auto"``; benchmarks/qa_distill.py). Elsewhere MiniLM alone, 3 epochs at 2e-4 (in bf16 with AVX512-BF16:
  10.8 min on SQuAD's 2,921 training questions on a 2-core AMD Zen 4, test F1 62.8; else float32: 21.6 min on 2 AVX2
  cores, F1 62.3; benchmarks/qa.py --default): mpnet costs ~8x MiniLM's compute per token, hours per epoch without
  bf16 units. ``--backbone mpnet`` trains the accurate, slower reader.

``init`` starts from a saved reader (``transferlab qa train --init DIR``, ``qa adapt``) instead of the packaged body;
``init_weight`` then keeps that share of the starting reader's weights in the final ones (weight-space ensembling,
WiSE-FT: Wortsman et al., 2022), what ``qa adapt`` does by default (see benchmarks/qa_wise.py).
``teacher`` (a saved reader folder, or an encoder name: a reader of that body trained in the run on
``teacher_fraction`` of the questions) distils a stronger reader into this one: the span cross-entropy is mixed with
the KL divergence to the teacher's start and end distributions (:class:`DistillSpanObjective`; ``distill_alpha``,
``distill_temperature``), on the windows that hold the answer; the teacher runs only on those.
``backbone`` names any registered transformer text encoder (``minilm``, ``mpnet``) or a ``pretrain-text`` folder.
With ``checkpoint_dir`` every epoch is saved and ``resume=True`` continues an interrupted run (same batches).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from transferlab.errors import UserError
from transferlab.training import Objective


class SpanObjective(Objective):
    """Start and end positions of the answer in each window (0: [CLS], not in this window): the mean of the two
    cross-entropies; ``span_accuracy`` counts windows whose best start and best end are both right."""

    def batch_loss(self, model: Any, inputs: Any, targets: Any,  # noqa: ANN401
                   training: bool) -> tuple[Any, dict[str, float], int]:
        logits = model(inputs).float()
        return self._finish(logits, targets, span_loss(logits, targets))

    def _finish(self, logits: Any, targets: Any, loss: Any) -> tuple[Any, dict[str, float], int]:  # noqa: ANN401
        best = logits.detach().argmax(1)
        n = len(targets)
        self.last_outputs = best
        return loss, {"loss": float(loss.detach()) * n,
                      "span_accuracy": int((best == targets).all(1).sum())}, n


def span_loss(logits: Any, targets: Any) -> Any:  # noqa: ANN401
    """The mean of the start and the end cross-entropy of (batch, length, 2) logits against (batch, 2) positions."""
    import torch.nn.functional as F  # noqa: N812

    return (F.cross_entropy(logits[..., 0], targets[:, 0]) + F.cross_entropy(logits[..., 1], targets[:, 1])) / 2


class DistillSpanObjective(SpanObjective):
    """Knowledge distillation (Hinton et al., 2015) for span readers: ``(1 - alpha)`` times the span cross-entropy
    plus ``alpha`` times the KL divergence between the teacher's and the student's start (and end) distributions
    over the window at ``temperature`` (times its square, so gradients keep their scale), on the windows marked
    for distillation. The DistilBERT SQuAD recipe's alpha 0.5 and temperature 2 are the defaults."""

    def __init__(self, alpha: float = 0.5, temperature: float = 2.0) -> None:
        self.alpha = float(alpha)
        self.temperature = float(temperature)

    def batch_loss(self, model: Any, inputs: Any, targets: Any,  # noqa: ANN401
                   training: bool) -> tuple[Any, dict[str, float], int]:
        import torch
        import torch.nn.functional as F  # noqa: N812

        hard, teacher, use = targets
        logits = model(inputs).float()
        t = self.temperature
        p = F.softmax(teacher / t, dim=1)
        kl = (torch.xlogy(p, p) - p * F.log_softmax(logits / t, dim=1)).sum(1).mean(1)  # (batch,)
        kd = (kl * use).sum() / use.sum().clamp(min=1.0) * t * t
        return self._finish(logits, hard, (1 - self.alpha) * span_loss(logits, hard) + self.alpha * kd)


RECIPES: dict[str, dict[str, float]] = {  # per body: what its defaults were chosen as (see the module doc)
    "minilm": {"epochs": 3, "lr": 2e-4},  # benchmarks/qa_sweep.py, qa_nodrop.py
    "mpnet": {"epochs": 1, "lr": 5e-5},  # benchmarks/qa_mpnet.py
    "distilled": {"epochs": 2, "lr": 2e-4},  # MiniLM with a teacher trained in the run (benchmarks/qa_distill.py)
}
TEACHER_FRACTION = 1 / 3  # the share of the questions a teacher trained in the run learns from (the time budget)


class QAReader(BaseEstimator):
    name = "qa_reader"

    def __init__(self, backbone: str | None = None, max_length: int = 256, stride: int = 96,
                 max_answer_tokens: int = 30, n_best: int = 20, epochs: int | None = None, lr: float | None = None,
                 head_lr: float = 1e-3, batch_size: int = 8, warmup_epochs: float = 0.1,
                 weight_decay: float = 0.01, negative_fraction: float = 0.1, train_word_embeddings: bool = False,
                 frozen_layers: int = 0, body_dropout: float | None = 0.0, null_threshold: float | None = None,
                 bf16: bool | None = None, teacher: str | None = "auto", teacher_fraction: float = TEACHER_FRACTION,
                 distill_alpha: float = 0.5, distill_temperature: float = 2.0, init: str | None = None,
                 init_weight: float = 0.0,
                 seed: int = 0,
                 checkpoint_dir: str | None = None, resume: bool = False) -> None:
        self.backbone = backbone
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.n_best = n_best
        self.epochs = epochs
        self.lr = lr
        self.head_lr = head_lr
        self.batch_size = batch_size
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.negative_fraction = negative_fraction
        self.train_word_embeddings = train_word_embeddings
        self.frozen_layers = frozen_layers
        self.body_dropout = body_dropout
        self.null_threshold = null_threshold
        self.bf16 = bf16
        self.teacher = teacher
        self.teacher_fraction = teacher_fraction
        self.distill_alpha = distill_alpha
        self.distill_temperature = distill_temperature
        self.init = init
        self.init_weight = init_weight
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    # --- parameters --------------------------------------------------------------------------------------------
    def recipe(self) -> dict[str, Any]:
        """The body, teacher, epochs, rate and precision this reader trains with: the parameters given, the rest from
        :data:`RECIPES` (a started reader's body is its own), with the reason for the body.

        No body and ``teacher="auto"`` (the defaults): MiniLM, which answers >= 50 questions/s on two cores. Where
        the CPU has bf16 matrix units (AMX) and mpnet is installed, an mpnet reader is first trained on
        ``teacher_fraction`` of the questions and distilled into it (``teacher`` "mpnet"); elsewhere MiniLM alone."""
        from transferlab._torch import bf16_units, native_bf16
        from transferlab.backbones import minilm, trainable_text_body
        from transferlab.model.qa_loaders import saved_reader_weights

        teacher = None if self.teacher == "auto" else self.teacher
        recipe = None  # the body's own, unless the default teacher is chosen below
        if self.init:
            body, why = str(saved_reader_weights(Path(self.init)).get("base", "minilm")), f"the body of {self.init}"
        elif self.backbone is not None:
            body, why = str(self.backbone), "asked for"
        else:
            best, because = trainable_text_body()
            body = minilm.NAME
            if self.teacher == "auto" and best != minilm.NAME and bf16_units() == "amx":
                teacher, recipe = best, "distilled"
                why = (f"MiniLM answers >= 50 questions/s on two cores; an {best} teacher trained here on "
                       f"{float(self.teacher_fraction):.0%} of the questions is distilled into it ({because})")
            elif self.teacher == "auto" and best != minilm.NAME:  # AVX512-BF16: bf16, but ~2.5x slower than AMX
                why = (f"the default body (no teacher: the {best} teacher fits the 30-minute budget with AMX; this "
                       "CPU's AVX512-BF16 trains it ~2.5x slower; `--teacher mpnet` asks for it)")
            else:
                why = "the default body" + ("" if self.teacher != "auto" else f" ({because}: no teacher)")
        base = RECIPES[recipe] if recipe else RECIPES.get(body, RECIPES["minilm"])
        return {"backbone": body, "reason": why, "teacher": teacher,
                "epochs": int(self.epochs if self.epochs is not None else base["epochs"]),
                "lr": float(self.lr if self.lr is not None else base["lr"]),
                "bf16": bool(self.bf16) if self.bf16 is not None else native_bf16()}

    def _check_params(self) -> None:
        if not 32 <= int(self.max_length) <= 512:
            raise UserError(f"max_length must be between 32 and 512 tokens, got {self.max_length}")
        if not 0 <= int(self.stride) < int(self.max_length) - MAX_QUESTION_ROOM:
            raise UserError(f"stride must be >= 0 and well below max_length ({self.max_length}), got {self.stride}")
        if (self.epochs is not None and int(self.epochs) < 1) or int(self.batch_size) < 1 \
                or int(self.max_answer_tokens) < 1:
            raise UserError("epochs, batch_size and max_answer_tokens must be >= 1")
        if (self.lr is not None and not self.lr > 0) or not self.head_lr > 0:
            raise UserError(f"lr and head_lr must be > 0, got {self.lr} and {self.head_lr}")
        if self.body_dropout is not None and not 0 <= float(self.body_dropout) < 1:
            raise UserError(f"body_dropout must be in [0, 1) or None (the encoder's own), got {self.body_dropout}")
        if int(self.frozen_layers) < 0:
            raise UserError(f"frozen_layers must be >= 0, got {self.frozen_layers}")
        if not 0 <= float(self.distill_alpha) <= 1 or not float(self.distill_temperature) > 0:
            raise UserError(f"distill_alpha must be in [0, 1] and distill_temperature > 0, got {self.distill_alpha} "
                            f"and {self.distill_temperature}")
        if self.teacher not in (None, "auto") and not (Path(self.teacher) / "config.json").exists() \
                and not _text_body(str(self.teacher)):
            raise UserError(f"{self.teacher}: not a saved reader (no config.json) nor a text encoder; the teacher is a "
                            "folder written by `transferlab qa train`, or an encoder (e.g. mpnet) to train one from")
        if not 0 < float(self.teacher_fraction) <= 1:
            raise UserError(f"teacher_fraction must be in (0, 1], got {self.teacher_fraction}")
        if not 0 <= float(self.init_weight) < 1:
            raise UserError(f"init_weight must be in [0, 1), got {self.init_weight}")
        if not 0 <= self.negative_fraction <= 1:
            raise UserError(f"negative_fraction must be in [0, 1], got {self.negative_fraction}")

    def _start(self) -> tuple[Any, Any, str]:
        """(network, tokenizer, base name): from ``init`` (a saved reader) or the packaged body of ``backbone``."""
        from transferlab.backbones import transformer_folder
        from transferlab.nn.qa import SpanReader
        from transferlab.nn.transformer import load_pretrained_body

        if self.init:
            from transferlab.model.qa_loaders import load_reader_net

            net, tokenizer, weights = load_reader_net(Path(self.init))
            return net, tokenizer, str(weights.get("base", self.recipe_["backbone"]))
        body, tokenizer = load_pretrained_body(transformer_folder(self.recipe_["backbone"]))
        return SpanReader(body), tokenizer, str(self.recipe_["backbone"])

    def _param_groups(self, net: Any) -> list[dict[str, Any]]:  # noqa: ANN401
        k = int(self.frozen_layers)
        n_layers = int(getattr(net.body.config, "num_hidden_layers", 0))
        if k >= n_layers > 0:
            raise UserError(f"frozen_layers ({k}) must leave some of the body's {n_layers} layers to train")
        # with frozen layers the whole embedding block is frozen too: back-propagation then stops at layer k
        frozen = (("embeddings.",) + tuple(f"encoder.layer.{i}." for i in range(k))) if k else ()
        body_params = []
        for name, p in net.body.named_parameters():
            trainable = ((self.train_word_embeddings or "word_embeddings" not in name)
                         and not (frozen and name.startswith(frozen)))
            p.requires_grad_(trainable)
            if trainable:
                body_params.append(p)
        for p in net.head.parameters():
            p.requires_grad_(True)
        return [{"params": body_params, "lr": float(self.recipe_["lr"]), "name": "body"},
                {"params": list(net.head.parameters()), "lr": float(self.head_lr), "name": "head"}]

    def _run_identity(self, examples: Sequence[Any]) -> str:
        """A digest of the data and parameters: a checkpoint is only resumed by the same run."""
        from transferlab.training import run_identity

        params = dict(self.get_params())
        params["recipe"] = {k: v for k, v in self.recipe_.items() if k != "reason"}  # what None resolved to here
        return run_identity(self.name, params, (f"{ex.id}\x00{ex.question}\x00{ex.answers}\x00{len(ex.context)}"
                                                for ex in examples))

    # --- training ----------------------------------------------------------------------------------------------
    def fit(self, X: Sequence[Any], y: Any = None) -> QAReader:  # noqa: N803, ANN401
        """Fine-tune on the answerable questions of ``X`` (QAExample list); unanswerable ones (SQuAD 2.0) train
        [CLS] in all their windows."""
        import torch

        from transferlab import runtime
        from transferlab._torch import set_torch_threads
        from transferlab.nn.qa import distill_batches, encode_windows, span_batches
        from transferlab.nn.transformer import bucketed_order
        from transferlab.progress import log
        from transferlab.training import TrainConfig, seed_everything, train_loop

        self._check_params()
        examples = list(X)
        if not examples:
            raise UserError("no questions to train on")
        self.recipe_ = r = self.recipe()
        log(f"qa_reader: body {r['backbone']} ({r['reason']}), {r['epochs']} epoch(s) at lr {r['lr']:g}, "
            f"{'bf16 autocast' if r['bf16'] else 'float32'}" + (f", teacher {r['teacher']}" if r["teacher"] else ""))
        set_torch_threads()
        seed_everything(int(self.seed))
        net, tokenizer, base = self._start()
        if self.body_dropout is not None:  # the encoder's hidden and attention dropout (0.1 for MiniLM)
            for module in net.body.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = float(self.body_dropout)
            net.body.config.hidden_dropout_prob = float(self.body_dropout)
            net.body.config.attention_probs_dropout_prob = float(self.body_dropout)
        spans = [None if ex.is_impossible or not ex.answers else
                 (ex.answers[0]["answer_start"], ex.answers[0]["answer_start"] + len(ex.answers[0]["text"]))
                 for ex in examples]
        windows = encode_windows(tokenizer, [e.question for e in examples], [e.context for e in examples],
                                 int(self.max_length), int(self.stride), spans)
        impossible = np.asarray([examples[p].is_impossible for p in windows.example], bool)
        positive = np.flatnonzero((windows.starts > 0) | impossible)
        negative = np.flatnonzero((windows.starts == 0) & ~impossible)
        n_neg = int(round(self.negative_fraction * len(negative)))
        lengths = windows.lengths()
        bs = int(self.batch_size)
        steps = -(-(len(positive) + n_neg) // bs)
        pad = tokenizer.pad_token_id or 0
        log(f"qa_reader: {len(examples)} questions, {len(windows)} windows ({len(positive)} with the answer or "
            f"unanswerable; {n_neg} of {len(negative)} others per epoch), {steps} steps per epoch")

        checkpoint = self._prepare_checkpoints(examples)
        soft, taught = (self._teacher_targets(examples, windows, spans, checkpoint) if r["teacher"] is not None
                        else (None, np.ones(len(examples), bool)))
        use = (windows.starts > 0) & ~impossible & taught[windows.example]  # where the teacher saw the answer

        def train_batches(epoch: int) -> Iterator[tuple[Any, Any]]:
            rng = np.random.default_rng((int(self.seed), epoch))
            chosen = np.concatenate([positive, rng.choice(negative, n_neg, replace=False)]) if n_neg else positive
            order = bucketed_order(lengths, chosen, bs, rng)
            if soft is None:
                yield from span_batches(windows, order, pad)
            else:
                yield from distill_batches(windows, soft, use, order, pad)

        mix = float(self.init_weight) if self.init else 0.0
        start = {k: v.detach().clone() for k, v in net.state_dict().items()} if mix else None
        cfg = TrainConfig(epochs=r["epochs"], lr=r["lr"], optimizer="adamw",
                          weight_decay=float(self.weight_decay), schedule="cosine",
                          warmup_epochs=float(self.warmup_epochs), patience=None, clip_grad_norm=1.0,
                          bf16=r["bf16"], seed=int(self.seed))
        history = train_loop(net, self._param_groups(net), train_batches, None, steps, cfg,
                             checkpoint_dir=checkpoint, resume=bool(self.resume), progress=runtime.show_progress(),
                             desc="qa_reader", objective=SpanObjective() if soft is None else
                             DistillSpanObjective(float(self.distill_alpha), float(self.distill_temperature)))
        if start is not None:  # weight-space ensembling with the starting reader (WiSE-FT)
            with torch.no_grad():
                for k, v in net.state_dict().items():
                    if v.is_floating_point():
                        v.mul_(1 - mix).add_(start[k].to(v.dtype), alpha=mix)
            log(f"qa_reader: weights averaged with {self.init}'s ({mix:g} of the starting reader's)")
        for p in net.parameters():
            p.requires_grad_(False)
        net.eval()
        self.net_, self.tokenizer_, self.base_ = net, tokenizer, base
        self.history_ = history.to_dict()
        self.null_threshold_ = (self.null_threshold if self.null_threshold is not None
                                else 0.0 if impossible.any() else None)
        self.train_windows_ = {"windows": len(windows), "with_answer": len(positive), "others_per_epoch": n_neg,
                               "steps_per_epoch": steps}
        if soft is not None:
            self.train_windows_["teacher"] = str(r["teacher"])
            self.train_windows_.update(self.teacher_info_)
        return self

    def _teacher_targets(self, examples: Sequence[Any], windows: Any, spans: Sequence[Any],  # noqa: ANN401
                         checkpoint: Path | None) -> tuple[list[np.ndarray], np.ndarray]:
        """(the logits of the teacher on this reader's windows where they hold the answer, which questions have
        them). The teacher is a saved reader folder (all questions), or an encoder name: then a reader of that body
        is trained here (its own recipe, same seed) on a seeded ``teacher_fraction`` of the questions and gives
        logits on the *others* only (cross-fitting: on its own training questions its outputs are fitted, not
        predictions; and its pass costs a fraction of the time). With checkpoints the logits are kept, so a resumed
        run skips the teacher."""
        import time

        from transferlab._torch import bf16_linears, native_bf16
        from transferlab.nn.qa import teacher_span_targets
        from transferlab.progress import log, progress_bar

        cached = checkpoint / "teacher_logits.npz" if checkpoint is not None else None
        if cached is not None and self.resume and cached.exists():
            with np.load(cached) as z:
                flat, cuts, taught = z["logits"], z["cuts"], z["taught"]
                self.teacher_info_ = json.loads(str(z["info"]))
            log(f"qa_reader: the teacher's logits from {cached}")
            return [flat[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)], taught
        teacher = str(self.recipe_["teacher"])
        t0 = time.perf_counter()
        if (Path(teacher) / "config.json").exists():
            from transferlab.model.qa_loaders import load_reader_net

            net, tokenizer, _ = load_reader_net(Path(teacher))
            info: dict[str, Any] = {}
            taught = np.ones(len(examples), bool)
        else:
            n = max(1, round(float(self.teacher_fraction) * len(examples)))
            rng = np.random.default_rng(int(self.seed))
            chosen = sorted(rng.choice(len(examples), n, replace=False).tolist()) if n < len(examples) \
                else list(range(len(examples)))
            log(f"qa_reader: training the {teacher} teacher on {n} of the {len(examples)} questions")
            trained = QAReader(backbone=teacher, teacher=None, max_length=self.max_length, stride=self.stride,
                               max_answer_tokens=self.max_answer_tokens, batch_size=self.batch_size,
                               seed=self.seed).fit([examples[i] for i in chosen])
            net, tokenizer = trained.net_, trained.tokenizer_
            taught = np.ones(len(examples), bool)
            if n < len(examples):
                taught[chosen] = False
            info = {"teacher_questions": n, "teacher_steps_per_epoch": trained.train_windows_["steps_per_epoch"],
                    "teacher_train_seconds": round(time.perf_counter() - t0, 1)}
        net = bf16_linears(net) if native_bf16() else net  # cast once, as QAPredictor does
        log(f"qa_reader: distilling {teacher} (alpha {self.distill_alpha:g}, "
            f"temperature {self.distill_temperature:g})")
        t1 = time.perf_counter()
        bar = progress_bar(total=None, desc="teacher", unit="window")
        soft = teacher_span_targets(net, tokenizer, [e.question for e in examples], [e.context for e in examples],
                                    windows, int(self.max_length), int(self.stride), bf16=native_bf16(),
                                    progress=bar.update,
                                    answers=[sp if taught[i] else None for i, sp in enumerate(spans)])
        bar.close()
        info.update({"teacher_pass_seconds": round(time.perf_counter() - t1, 1),
                     "distilled_questions": int(taught.sum())})
        self.teacher_info_ = info
        if cached is not None:
            cuts = np.cumsum([0] + [len(a) for a in soft])
            np.savez(cached, logits=np.concatenate(soft) if soft else np.zeros((0, 2), np.float32), cuts=cuts,
                     taught=taught, info=json.dumps(info))
        return soft, taught

    def _prepare_checkpoints(self, examples: Sequence[Any]) -> Path | None:
        from transferlab.training import prepare_checkpoints

        return prepare_checkpoints(self.checkpoint_dir, self._run_identity(examples), bool(self.resume))

    # --- answering and saving -----------------------------------------------------------------------------------
    def check_is_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise UserError("this qa_reader is not trained yet; call fit first")

    def answer(self, questions: Sequence[str], contexts: Sequence[str]) -> list[dict[str, Any]]:
        """The best answer per (question, context) pair: ``answer``, ``start``, ``score``, ``candidates``."""
        from transferlab._torch import set_torch_threads
        from transferlab.nn.qa import answer

        self.check_is_fitted()
        set_torch_threads()
        return answer(self.net_, self.tokenizer_, questions, contexts, int(self.max_length), int(self.stride),
                      int(self.max_answer_tokens), int(self.n_best), self.null_threshold_)

    def save_weights(self, directory: Path) -> dict[str, Any]:
        """model.safetensors (body + head), the body's config and tokenizer in ``transformer/``, history.json; the
        returned ``weights`` entry is all the loader needs."""
        from safetensors.torch import save_file

        self.check_is_fitted()
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()},
                  str(directory / "model.safetensors"))
        self.net_.body.config.save_pretrained(str(directory / "transformer"))
        self.tokenizer_.save_pretrained(str(directory / "transformer"))
        (directory / "history.json").write_text(json.dumps(self.history_, indent=2))
        return {"kind": "qa_reader", "file": "model.safetensors", "transformer": "transformer", "base": self.base_,
                "max_length": int(self.max_length), "stride": int(self.stride),
                "max_answer_tokens": int(self.max_answer_tokens), "n_best": int(self.n_best),
                "null_threshold": self.null_threshold_}


def _text_body(name: str) -> bool:
    """Whether ``name`` is a registered transformer text encoder (a teacher to train in the run)."""
    from transferlab.backbones import get_backbone

    try:
        return getattr(get_backbone(name), "body_folder", None) is not None
    except UserError:
        return False


MAX_QUESTION_ROOM = 16  # a window must leave some room for the context beside [CLS], question and [SEP]s
