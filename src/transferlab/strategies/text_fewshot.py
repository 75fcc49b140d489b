"""text_fewshot: SetFit (Tunstall et al., 2022), written here: contrastive fine-tuning of MiniLM on sentence pairs,
then logistic regression on the tuned embeddings. Meant for a handful (8-64) of labelled examples per class.

1. Pairs: ``num_iterations`` rounds; in each, every example is paired once with a random example of its own class
   (target similarity 1) and once with a random example of another class (target 0), as SetFit does.
2. Contrastive fine-tuning of the whole body (word embeddings included, as SetFit) through the one training loop:
   the outputs are the cosine similarities of the mean-pooled embeddings of each pair, the loss is their squared
   error to the target (sentence-transformers' ``CosineSimilarityLoss``); AdamW at ``lr`` (2e-5), ``epochs`` (1),
   10% warm-up then cosine decay, batches of ``batch_size`` pairs.
3. Head: scikit-learn's ``LogisticRegression`` (C = ``C``) on the tuned, L2-normalised embeddings of the examples.

``label_prompts``: the class names themselves are evidence. With it on, a few templated sentences per class
(``LABEL_TEMPLATES``: "This sentence is {label}.", ...) join the examples in the pairs and in the head, as the SetFit
library's ``get_templated_dataset`` does. "auto" (default) turns it on when every class name contains a letter (names
such as ``0``/``1`` say nothing). On sst2 with 8 examples per class it lifts test accuracy from 0.675 to 0.751
(mean of 5 draws); with 64 per class it gives 0.799.

Saved as the tuned body in safetensors, its tokenizer and config (``transformer/``) and the head (``head.json`` +
``head.safetensors``); the predictor needs neither the training code nor the MiniLM package. Side columns of the
data (``--feature-columns``) are encoded and appended to the embeddings before the logistic regression.
``backbone``: None for the packaged MiniLM, a registered text encoder (``mpnet``), or a folder from ``transferlab
pretrain-text --method mlm``. ``--strategy auto`` picks the body by :func:`transferlab.backbones.fewshot_text_body`:
mpnet wherever it is installed (its pairs are capped, so minutes), else MiniLM; on a CPU without bf16 units only
mpnet's top 4 layers (below). ``bf16`` (None: on for mpnet where the CPU has those units) trains under bf16
autocast; the head's embeddings are always computed in float32.
``train_layers`` (None: all): only the top ``train_layers`` transformer layers are tuned; the layers below (and the
word embeddings) stay as pretrained and run once over the examples, their outputs kept (as ``text_finetune`` does),
so a pair costs only the top layers. mpnet's top 4 on 2 AVX2 cores, sst2 with 8 per class: ~2 min of fitting instead
of 6-7, test accuracy 0.869 / 0.871 / 0.865 on draws 0-2 where the whole body scored 0.863 / 0.866 / 0.872 (5 draws:
0.871; MiniLM, draw 0: 0.757); 64 per class, draw 0: 0.908 in 3.9 min (whole body 0.911 in 12.3 min).
``max_pairs`` ("auto": 2,000 for mpnet, no cap for MiniLM) lowers the rounds on larger draws so the number of pairs,
and so the time, stays bounded.
``checkpoint_dir`` (set by ``transferlab train --out DIR``): the training state is saved there every
:data:`CHECKPOINT_EVERY_S` seconds, within the (one, by default) epoch or at its end (a fit shorter than that writes
nothing: mpnet's state is ~0.7-1.3 GB); ``resume=True`` (``--resume``)
goes on from the last save, skipping the pairs already trained, and ends with the same model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.strategies.base import Strategy


def contrastive_pairs(y: np.ndarray, num_iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(n_pairs, 3) int array of (i, j, same class) over ``num_iterations`` rounds."""
    by_class = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    pairs = []
    for _ in range(num_iterations):
        for i, c in enumerate(y):
            same = by_class[c]
            other = np.flatnonzero(y != c)
            pairs.append((i, int(rng.choice(same)), 1))
            pairs.append((i, int(rng.choice(other)), 0))
    return np.asarray(pairs, np.int64)


LABEL_TEMPLATES = ("This text is about {label}.", "{label}", "This is {label}.", "It was {label}.",
                   "a {label} review", "This sentence is {label}.")


def label_prompt_examples(classes: list[str]) -> tuple[list[str], list[int]]:
    """Templated sentences for every class (texts, class indices), from the readable class names."""
    from transferlab.strategies.text_zeroshot import readable_label

    texts, labels = [], []
    for template in LABEL_TEMPLATES:
        for i, c in enumerate(classes):
            texts.append(template.replace("{label}", readable_label(c)))
            labels.append(i)
    return texts, labels


def _pair_module(encoder: Any) -> Any:
    """``encoder`` (anything with ``embed(inputs)``: the whole body's :class:`TransformerClassifier`, or the top
    layers' :class:`TopOfClassifier` over kept hidden states) wrapped so that ``net((a, b))`` gives the cosine
    similarity of each pair's mean-pooled embeddings (the training loop's
    :class:`~transferlab.training.PairSimilarity` objective regresses it on the pair's target)."""
    import torch
    import torch.nn as nn

    class PairSimilarity(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, inputs: tuple[Any, Any]) -> torch.Tensor:
            a, b = inputs
            return nn.functional.cosine_similarity(self.encoder.embed(a), self.encoder.embed(b), dim=1)

    return PairSimilarity()


CHECKPOINT_EVERY_S = 120.0  # a save of mpnet's state takes seconds (weights + AdamW moments, ~0.7-1.3 GB): every
# 2 min costs ~2% of the run and loses at most 2 min of a 2-8 min fit to a kill

MPNET_MAX_PAIRS = 2000  # fine-tuning needs a number of updates, not rounds: 8 per class (with the class-name
# sentences, 28 texts) keeps all 20 rounds (1,120 pairs, ~4 min for mpnet here); 64 per class gets 7 rounds
# (1,960 pairs, ~7 min) instead of 20 (5,600, ~19 min)


class TextFewShot(Strategy):
    name = "text_fewshot"
    modality = "text"
    summary = "SetFit: contrastive fine-tuning of MiniLM on example pairs, then logistic regression (few labels)"
    uses_side_features = True  # --feature-columns: side columns joined to the features

    def __init__(self, num_iterations: int = 20, epochs: int = 1, lr: float = 2e-5, batch_size: int = 16,
                 max_length: int = 64, C: float = 1.0, backbone: str | None = None,  # noqa: N803
                 label_prompts: bool | str = "auto", bf16: bool | None = None, max_pairs: int | str | None = "auto",
                 train_layers: int | None = None, seed: int = 0, checkpoint_dir: str | None = None,
                 resume: bool = False) -> None:
        self.num_iterations = num_iterations
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.C = C
        self.backbone = backbone
        self.label_prompts = label_prompts
        self.bf16 = bf16
        self.max_pairs = max_pairs
        self.train_layers = train_layers
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    def _iterations(self, n_texts: int) -> int:
        """``num_iterations``, lowered so the pairs (2 per text per round) stay within ``max_pairs``: "auto" caps
        them at :data:`MPNET_MAX_PAIRS` for mpnet (~3 s per batch of 16 pairs here), no cap for MiniLM; None: no
        cap."""
        cap = self.max_pairs
        if cap == "auto":
            cap = MPNET_MAX_PAIRS if self._on_mpnet() else None
        if cap is None:
            return int(self.num_iterations)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise UserError(f"max_pairs must be a positive number, auto or None, got {cap!r}")
        return max(1, min(int(self.num_iterations), cap // (2 * max(1, n_texts))))

    def _use_bf16(self) -> bool:
        """``bf16`` as given; None: bf16 autocast for mpnet where the CPU has bf16
        matrix units (AMX), as ``text_finetune`` under ``auto`` and the QA reader train it; float32 otherwise."""
        from transferlab._torch import native_bf16

        if self.bf16 is not None:
            return bool(self.bf16) and native_bf16()
        return self._on_mpnet() and native_bf16()

    def _on_mpnet(self) -> bool:
        """Whether the body is the packaged mpnet (None, ``minilm`` and ``pretrain-text`` folders are MiniLM)."""
        from transferlab.backbones import mpnet

        return self.backbone == mpnet.NAME

    def _use_label_prompts(self, classes: list[str]) -> bool:
        if self.label_prompts == "auto":
            from transferlab.data.texts import class_names_are_words

            return class_names_are_words(classes)
        if isinstance(self.label_prompts, bool):
            return self.label_prompts
        raise UserError(f"label_prompts must be auto, true or false, got {self.label_prompts!r}")

    def _body_folder(self) -> str | None:
        from transferlab.backbones import transformer_folder

        return transformer_folder(self.backbone) if self.backbone else None

    def fit(self, X: Any, y: Any = None) -> TextFewShot:  # noqa: N803
        import torch
        from sklearn.linear_model import LogisticRegression

        from transferlab import runtime
        from transferlab._torch import set_torch_threads
        from transferlab.data.side_features import fit_side_features, join_dense, side_matrix
        from transferlab.data.texts import texts_of
        from transferlab.heads import LinearHead
        from transferlab.nn.transformer import (
            TopOfClassifier,
            TransformerClassifier,
            collate,
            collate_hidden,
            embed_texts,
            load_pretrained_body,
            lower_hidden_states,
            tokenize,
        )
        from transferlab.training import (
            PairSimilarity,
            TrainConfig,
            prepare_checkpoints,
            run_identity,
            seed_everything,
            train_loop,
        )

        if int(self.num_iterations) < 1 or int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise UserError("num_iterations, epochs and batch_size must be >= 1")
        if not self.lr > 0 or not self.C > 0:
            raise UserError(f"lr and C must be > 0, got {self.lr} and {self.C}")
        if self.train_layers is not None and int(self.train_layers) < 1:
            raise UserError(f"train_layers must be >= 1 (or None: all), got {self.train_layers}")
        X, y = self._as_dataset(X, y)  # noqa: N806
        labels, classes = self.labels_of(X, y)
        if len(np.unique(labels)) < 2:
            raise UserError("text_fewshot needs examples of at least two classes")
        texts = texts_of(X)
        n_real = len(texts)
        prompts = self._use_label_prompts(list(classes))
        if prompts:
            extra_texts, extra_labels = label_prompt_examples(list(classes))
            texts = texts + extra_texts
            labels = np.concatenate([labels, np.asarray(extra_labels, labels.dtype)])
        ckpt = prepare_checkpoints(self.checkpoint_dir, run_identity(
            self.name, self.get_params(), (f"{c}\x00{t}" for c, t in zip(labels.tolist(), texts, strict=True))),
            bool(self.resume))
        set_torch_threads()
        seed_everything(self.seed)
        body, tokenizer = load_pretrained_body(self._body_folder())
        encoded = tokenize(tokenizer, texts, int(self.max_length))
        pairs = contrastive_pairs(labels, self._iterations(len(labels)), np.random.default_rng(self.seed))
        bs = int(self.batch_size)
        whole = TransformerClassifier(body, 1, 0.0)
        n_layers = len(body.encoder.layer)
        n_top = min(int(self.train_layers), n_layers) if self.train_layers is not None else n_layers
        if n_top < n_layers:  # as text_finetune: the frozen bottom runs once over the (few) texts
            cached = lower_hidden_states(body, encoded, n_layers - n_top, bf16=self._use_bf16(),
                                         progress=runtime.show_progress(), desc=f"{self.name}: frozen layers")
            net = _pair_module(TopOfClassifier(whole, n_top))
            make = lambda idx: collate_hidden([cached[i] for i in idx])  # noqa: E731
            for p in body.parameters():
                p.requires_grad_(False)
            trained = [p for layer in body.encoder.layer[n_layers - n_top:] for p in layer.parameters()]
            for p in trained:
                p.requires_grad_(True)
        else:
            net = _pair_module(whole)
            make = lambda idx: collate([encoded[i] for i in idx])  # noqa: E731
            trained = list(net.parameters())

        def train_batches(epoch: int) -> Iterator[tuple[Any, torch.Tensor]]:
            order = pairs[np.random.default_rng((self.seed, epoch)).permutation(len(pairs))]
            for s in range(0, len(order), bs):
                chunk = order[s : s + bs]
                yield (make(chunk[:, 0]), make(chunk[:, 1])), torch.from_numpy(chunk[:, 2])

        cfg = TrainConfig(epochs=int(self.epochs), lr=self.lr, optimizer="adamw", weight_decay=0.01,
                          schedule="cosine", warmup_epochs=0.1 * int(self.epochs), patience=None,
                          bf16=self._use_bf16(), seed=self.seed)
        history = train_loop(net, [{"params": trained, "lr": self.lr, "name": "body"}],
                             train_batches, None, -(-len(pairs) // bs), cfg, progress=runtime.show_progress(),
                             desc=f"{self.name}: contrastive pairs", objective=PairSimilarity(),
                             checkpoint_dir=ckpt, resume=bool(self.resume), checkpoint_every_s=CHECKPOINT_EVERY_S)
        for p in body.parameters():
            p.requires_grad_(False)
        body.eval()
        self.side_encoder_ = fit_side_features(X)
        embedded = embed_texts(body, tokenizer, texts, int(self.max_length))
        if self.side_encoder_ is not None:  # the templated sentences have no side columns: the head sees real rows
            embedded, labels = embedded[:n_real], labels[:n_real]
        features = join_dense(embedded, side_matrix(self.side_encoder_, X))
        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(features, labels)
        self.body_ = body
        self.tokenizer_ = tokenizer
        self.head_ = LinearHead.from_sklearn(clf.coef_, clf.intercept_)
        self.classes_ = list(classes)
        self.history_ = [{"stage": "contrastive pairs", "n_pairs": len(pairs),
                          "label_prompts": len(texts) - n_real, **history.to_dict()}]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        from transferlab._torch import set_torch_threads
        from transferlab.data.side_features import join_dense, side_matrix
        from transferlab.data.texts import texts_of
        from transferlab.nn.transformer import embed_texts

        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        set_torch_threads()
        side = side_matrix(self.side_encoder_, X)
        return self.head_.predict_proba(join_dense(embed_texts(self.body_, self.tokenizer_, texts_of(X),
                                                               int(self.max_length)), side))

    def save_weights(self, directory: Path) -> dict[str, Any]:
        import json

        from safetensors.torch import save_file

        from transferlab.backbones.minilm import MINILM, minilm_path
        from transferlab.nn.transformer import copy_tokenizer_files

        self.check_is_fitted()
        save_file({k: v.detach().contiguous() for k, v in self.body_.state_dict().items()},
                  str(directory / "body.safetensors"))
        copy_tokenizer_files(self._body_folder() or minilm_path(), directory / "transformer")
        self.head_.save(directory)
        (directory / "history.json").write_text(json.dumps({"stages": self.history_}, indent=2))
        out: dict[str, Any] = {"kind": "text_tuned_embedding+head", "file": "body.safetensors",
                               "transformer": "transformer",
                               "base": str(self.backbone) if self.backbone else MINILM,
                               "pooling": "mean", "normalize": True, "max_length": int(self.max_length)}
        if self.side_encoder_ is not None:
            out["side_features"] = self.side_encoder_.save(directory)
        return out
