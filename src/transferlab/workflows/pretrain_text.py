"""Self-supervised domain adaptation on unlabelled text: ``transferlab pretrain-text CORPUS --out DIR``.

A CORPUS is a ``.txt`` file (one document per line) or a CSV/TSV/JSONL file with a text column. Two methods:

- ``skipgram`` / ``cbow``: word2vec word vectors (gensim), trained on the corpus tokenised exactly as the word
  networks tokenise (:func:`transferlab.backbones.glove.tokenize`). DIR holds ``vectors.safetensors`` (one row per
  word), ``vocabulary.json`` (the words in row order, with counts) and the manifest. Use it with
  ``text_embedding_cnn`` / ``text_embedding_rnn`` as ``--backbone DIR`` (or ``--param embeddings=DIR``) in place of
  GloVe.
- ``mlm``: masked-language-model training continued on the corpus, starting from MiniLM (or from an earlier ``mlm``
  folder). 15 % of the word pieces are chosen per text; 80 % of those become ``[MASK]``, 10 % a random token, 10 %
  stay; the loss is the cross-entropy of the chosen pieces. MiniLM ships without its MLM head, so a new BERT head
  (dense, GELU, LayerNorm, decoder tied to the word embeddings, bias) is trained alone for the first steps, then with
  the body (AdamW, warm-up then cosine decay, gradient clipping). DIR holds the body as ``config.json`` +
  ``model.safetensors`` with its tokenizer (a normal Hugging Face folder), ``mlm_head.safetensors`` (so a later run
  can continue) and the manifest. Use it with ``text_finetune``, ``text_headless`` or ``text_fewshot`` as
  ``--backbone DIR``.

Every such folder carries ``transferlab_backbone.json``, the manifest that says what it is (``kind``:
``word_vectors`` or ``transformer``) and how it was made.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# the folders this verb writes are backbones: reading them is the registry's business (backbones/folder.py); the
# names stay importable from here
from transferlab.backbones.folder import (
    MANIFEST,
    copy_transformer_backbone,
    is_backbone_folder,
    load_word_vectors,
    read_manifest,
    transformer_backbone,
    word_vectors_backbone,
)
from transferlab.backbones.minilm import MINILM, minilm_path
from transferlab.errors import DataError, UserError
from transferlab.progress import log, progress_bar

METHODS = ("skipgram", "cbow", "mlm")
CORPUS_TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")


# --- the corpus ----------------------------------------------------------------------------------------------------
def read_corpus(path: str | os.PathLike[str], text_column: str = "text") -> list[str]:
    """The documents of a corpus: non-empty lines of a text file, or the texts of a CSV/TSV/JSONL column."""
    from transferlab.data.report import DataReport
    from transferlab.data.texts import decode_bytes, read_text_file

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such corpus file")
    report = DataReport(source=str(p))
    if p.suffix.lower() in CORPUS_TABLE_SUFFIXES:
        docs = read_text_file(p, text_column, None, report).texts
    else:
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise DataError(f"{p}: cannot read ({exc.strerror})") from None
        docs = [line.strip() for line in decode_bytes(raw, str(p), report).splitlines() if line.strip()]
    for note in report.notes:  # e.g. not UTF-8, decoded as Windows-1252
        log(note)
    if not docs:
        raise DataError(f"{p}: the corpus has no text (one document per line, or a {text_column!r} column)")
    return docs


# --- word vectors --------------------------------------------------------------------------------------------------
def train_word_vectors(docs: Sequence[str], out: Path, method: str = "skipgram", dim: int = 100, epochs: int = 5,
                       window: int = 5, min_count: int = 2, seed: int = 0, progress: bool = True,
                       sample: float = 1e-3) -> dict[str, Any]:
    """word2vec (skip-gram or CBOW, negative sampling) with gensim; writes vectors, vocabulary; returns the manifest.

    ``sample`` down-samples frequent words (gensim's default 1e-3); on a small corpus, where every word is
    "frequent", more ``epochs`` matter more than anything else."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec
    from safetensors.numpy import save_file

    from transferlab.backbones.glove import tokenize

    if method not in ("skipgram", "cbow"):
        raise UserError(f"word vectors: method must be skipgram or cbow, got {method!r}")
    if dim < 2 or epochs < 1 or window < 1 or min_count < 1 or not 0 <= sample < 1:
        raise UserError("--dim must be >= 2, --epochs, --window, --min-count >= 1 and --sample in [0, 1)")
    sentences = [tokens for tokens in (tokenize(d) for d in docs) if tokens]
    if not sentences:
        raise DataError("the corpus has no words to learn vectors for")
    n_tokens = sum(len(s) for s in sentences)
    bar = progress_bar(total=epochs, desc=f"word2vec ({method})", unit="epoch", enabled=progress)

    class _Tick(CallbackAny2Vec):
        def on_epoch_end(self, model: Any) -> None:
            bar.update(1)

    try:
        w2v = Word2Vec(sentences=sentences, vector_size=int(dim), window=int(window), min_count=int(min_count),
                       sg=1 if method == "skipgram" else 0, negative=5, sample=float(sample), epochs=int(epochs),
                       seed=int(seed), workers=1, callbacks=[_Tick()])
    except RuntimeError as exc:  # gensim: "you must first build vocabulary before training the model"
        raise DataError(f"no word occurs --min-count {min_count} times in the corpus ({exc})") from None
    finally:
        bar.close()
    words = list(w2v.wv.index_to_key)
    if not words:
        raise DataError(f"no word occurs --min-count {min_count} times in the corpus")
    save_file({"vectors": np.ascontiguousarray(w2v.wv.vectors, np.float32)}, str(out / "vectors.safetensors"))
    counts = [int(w2v.wv.get_vecattr(w, "count")) for w in words]
    (out / "vocabulary.json").write_text(json.dumps({"tokens": words, "counts": counts}, ensure_ascii=False))
    return {"kind": "word_vectors", "method": method, "dim": int(dim), "vocab_size": len(words),
            "files": {"vectors": "vectors.safetensors", "vocabulary": "vocabulary.json"},
            "tokenizer": "transferlab.text.wordnets.tokenize (lower-cased words, clitics, punctuation)",
            "params": {"epochs": int(epochs), "window": int(window), "min_count": int(min_count),
                       "negative": 5, "sample": float(sample), "seed": int(seed)},
            "corpus_tokens": n_tokens, "usable_with": ["text_embedding_cnn", "text_embedding_rnn"]}


# --- masked language model -----------------------------------------------------------------------------------------
def _mlm_head(body: Any) -> Any:
    """BERT's MLM head: dense -> GELU -> LayerNorm -> logits against the (tied) word embeddings + a bias."""
    import torch
    import torch.nn as nn

    class MLMHead(nn.Module):
        def __init__(self, hidden: int, vocab: int, eps: float) -> None:
            super().__init__()
            self.dense = nn.Linear(hidden, hidden)
            self.norm = nn.LayerNorm(hidden, eps=eps)
            self.bias = nn.Parameter(torch.zeros(vocab))

        def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
            x = self.norm(nn.functional.gelu(self.dense(hidden)))
            return x @ word_embeddings.T + self.bias

    cfg = body.config
    return MLMHead(cfg.hidden_size, cfg.vocab_size, float(getattr(cfg, "layer_norm_eps", 1e-12)))


def mask_tokens(ids: Any, attention: Any, special: Any, mask_id: int, vocab_size: int, prob: float,
                generator: Any) -> tuple[Any, Any]:
    """(masked input ids, labels with -100 where nothing is predicted), BERT's 80/10/10 rule; at least one
    position of the batch is chosen."""
    import torch

    candidates = attention.bool() & ~special
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & candidates
    if not bool(chosen.any()) and bool(candidates.any()):
        flat = candidates.flatten().nonzero().squeeze(1)
        pick = flat[torch.randint(len(flat), (1,), generator=generator)]
        chosen.view(-1)[pick] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = mask_id
    random_tokens = torch.randint(vocab_size, ids.shape, generator=generator)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = random_tokens[swap]
    return inputs, labels


def _special_mask(ids: Any, tokenizer: Any) -> Any:
    import torch

    specials = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype)
    return torch.isin(ids, specials)


def _mlm_batch_loss(body: Any, head: Any, batch: tuple[Any, Any], tokenizer: Any, prob: float,
                    generator: Any) -> Any:
    import torch.nn as nn

    ids, attention = batch
    inputs, labels = mask_tokens(ids, attention, _special_mask(ids, tokenizer), int(tokenizer.mask_token_id),
                                 int(body.config.vocab_size), prob, generator)
    hidden = body(input_ids=inputs, attention_mask=attention).last_hidden_state
    chosen = labels != -100
    logits = head(hidden[chosen], body.embeddings.word_embeddings.weight)
    return nn.functional.cross_entropy(logits.float(), labels[chosen])


def evaluate_mlm(body: Any, head: Any, tokenizer: Any, encoded: Sequence[Sequence[int]], prob: float = 0.15,
                 seed: int = 0, batch_size: int = 32) -> float:
    """Mean MLM loss over ``encoded`` with masks drawn from ``seed`` (the same masks on every call)."""
    import torch

    from transferlab.nn.transformer import eval_batches

    generator = torch.Generator().manual_seed(int(seed))
    body.eval()
    head.eval()
    total, n = 0.0, 0
    with torch.inference_mode():
        for chunk, batch in eval_batches(encoded, np.arange(len(encoded)), batch_size):
            total += float(_mlm_batch_loss(body, head, batch, tokenizer, prob, generator)) * len(chunk)
            n += len(chunk)
    return total / max(n, 1)


def load_mlm(folder: str | os.PathLike[str] | None = None, seed: int = 0) -> tuple[Any, Any, Any, bool]:
    """(body, MLM head, tokenizer, head was pretrained) from MiniLM or an ``mlm`` folder; a new head starts
    from ``seed``."""
    import torch
    from safetensors.torch import load_file

    from transferlab.nn.transformer import load_pretrained_body

    source = transformer_backbone(folder) if folder is not None else None
    body, tokenizer = load_pretrained_body(source)
    torch.manual_seed(int(seed))
    head = _mlm_head(body)
    saved = Path(source) / "mlm_head.safetensors" if source else None
    if saved is not None and saved.is_file():
        head.load_state_dict(load_file(str(saved)))
        return body, head, tokenizer, True
    return body, head, tokenizer, False


def mlm_loss(folder: str | os.PathLike[str] | None, docs: Sequence[str], max_length: int = 128, seed: int = 0,
             prob: float = 0.15) -> float:
    """MLM loss of a saved ``mlm`` folder (or MiniLM with a new head drawn from ``seed``) on ``docs``."""
    from transferlab.nn.transformer import tokenize

    body, head, tokenizer, _ = load_mlm(folder, seed)
    return evaluate_mlm(body, head, tokenizer, tokenize(tokenizer, list(docs), int(max_length)), prob, seed)


def train_mlm(docs: Sequence[str], out: Path, base: str | None = None, max_steps: int = 300, batch_size: int = 16,
              max_length: int = 128, lr: float = 5e-5, head_lr: float = 1e-3, mask_prob: float = 0.15,
              warmup_fraction: float = 0.1, train_word_embeddings: bool = False, eval_docs: int = 256,
              seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Continue MLM training of MiniLM (or of ``base``) on ``docs``; write the body, tokenizer and head into ``out``
    and return the manifest (with the MLM loss on a fixed sample of the corpus before and after)."""
    import math

    import torch
    import torch.nn as nn
    from safetensors.torch import save_file

    from transferlab._torch import set_torch_threads
    from transferlab.nn.transformer import bucketed_order, collate, copy_tokenizer_files, tokenize
    from transferlab.training import seed_everything

    if max_steps < 1 or batch_size < 1:
        raise UserError("--max-steps and --batch-size must be >= 1")
    if not 8 <= max_length <= 512:
        raise UserError(f"--max-length must be between 8 and 512 tokens, got {max_length}")
    if not 0 < mask_prob < 1 or not lr > 0 or not head_lr > 0:
        raise UserError("the mask probability must be in (0, 1) and learning rates > 0")
    set_torch_threads()
    seed_everything(seed)
    body, head, tokenizer, head_pretrained = load_mlm(base, seed)
    encoded = [s for s in tokenize(tokenizer, list(docs), int(max_length)) if len(s) > 2]
    if not encoded:
        raise DataError("the corpus has no text the tokenizer can use")
    rng = np.random.default_rng(seed)
    sample = [encoded[i] for i in sorted(rng.choice(len(encoded), min(eval_docs, len(encoded)), replace=False))]
    loss_before = evaluate_mlm(body, head, tokenizer, sample, mask_prob, seed)

    for name, p in body.named_parameters():
        p.requires_grad_(train_word_embeddings or "word_embeddings" not in name)
    body_params = [p for p in body.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body_params, "lr": lr}, {"params": list(head.parameters()),
                                                                        "lr": head_lr}], weight_decay=0.01,
                                  foreach=True)  # one kernel per step for all tensors: far less overhead on CPU
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    # a new head starts random: train it alone first, so its first, random gradients do not disturb the body
    head_only = 0 if head_pretrained else min(100, max_steps // 5)
    warmup = max(1, int(warmup_fraction * (max_steps - head_only)))
    lengths = np.asarray([len(s) for s in encoded])
    generator = torch.Generator().manual_seed(int(seed))

    def batches() -> Iterator[tuple[Any, Any]]:
        epoch = 0
        while True:
            for chunk in bucketed_order(lengths, np.arange(len(encoded)), int(batch_size),
                                        np.random.default_rng((seed, epoch))):
                yield collate([encoded[i] for i in chunk])
            epoch += 1

    history: list[float] = []
    bar = progress_bar(total=max_steps, desc="MLM pretraining", unit="step", enabled=progress)
    stream = batches()
    t0 = time.perf_counter()
    for step in range(max_steps):
        body_on = step >= head_only
        body.train(body_on)
        head.train()
        k = step - head_only
        factor = (min(1.0, (k + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * k / max(1, max_steps - head_only)))
                  if body_on else 0.0)
        optimizer.param_groups[0]["lr"] = base_lrs[0] * factor
        optimizer.param_groups[1]["lr"] = base_lrs[1] * (factor if body_on else 1.0)
        with torch.set_grad_enabled(True):
            if body_on:
                loss = _mlm_batch_loss(body, head, next(stream), tokenizer, mask_prob, generator)
            else:
                with torch.no_grad():
                    ids, attention = next(stream)
                    inputs, labels = mask_tokens(ids, attention, _special_mask(ids, tokenizer),
                                                 int(tokenizer.mask_token_id), int(body.config.vocab_size),
                                                 mask_prob, generator)
                    hidden = body(input_ids=inputs, attention_mask=attention).last_hidden_state
                chosen = labels != -100
                logits = head(hidden[chosen], body.embeddings.word_embeddings.weight.detach())
                loss = nn.functional.cross_entropy(logits.float(), labels[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([*body_params, *head.parameters()], 1.0)
        optimizer.step()
        history.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix({"loss": f"{np.mean(history[-20:]):.3f}"})
    bar.close()
    seconds = time.perf_counter() - t0
    body.eval()
    loss_after = evaluate_mlm(body, head, tokenizer, sample, mask_prob, seed)
    for p in body.parameters():
        p.requires_grad_(True)
    body.save_pretrained(str(out), safe_serialization=True)
    source = transformer_backbone(base) if base else minilm_path()
    copy_tokenizer_files(source, out)
    body.config.to_json_file(str(out / "config.json"))  # the body's own config (copy_tokenizer_files copied one)
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(out / "mlm_head.safetensors"))
    base_name = read_manifest(base).get("base", MINILM) if base else MINILM
    return {"kind": "transformer", "method": "mlm", "architecture": body.config.model_type, "base": base_name,
            "continued_from": str(base) if base else MINILM, "hidden_size": int(body.config.hidden_size),
            "files": {"weights": "model.safetensors", "config": "config.json", "mlm_head": "mlm_head.safetensors"},
            "params": {"max_steps": int(max_steps), "batch_size": int(batch_size), "max_length": int(max_length),
                       "lr": lr, "head_lr": head_lr, "head_only_steps": head_only, "mask_prob": mask_prob,
                       "train_word_embeddings": bool(train_word_embeddings), "seed": int(seed)},
            "mlm_loss_before": loss_before, "mlm_loss_after": loss_after, "eval_documents": len(sample),
            "train_loss": [round(x, 4) for x in history], "train_seconds": seconds,
            "usable_with": ["text_finetune", "text_headless", "text_fewshot"]}


# --- the verb ------------------------------------------------------------------------------------------------------
def pretrain_text(corpus: str | os.PathLike[str], out: str | os.PathLike[str], method: str = "skipgram",
                  text_column: str = "text", dim: int = 100, epochs: int = 5, window: int = 5, min_count: int = 2,
                  max_steps: int = 300, batch_size: int = 16, max_length: int = 128, lr: float = 5e-5,
                  base: str | None = None, seed: int = 0, progress: bool | None = None,
                  sample: float = 1e-3) -> dict[str, Any]:
    """Read CORPUS, train word vectors or continue MLM training, and write the backbone folder ``out`` atomically
    (a temporary sibling, then renamed over any earlier backbone there). Returns the manifest."""
    from transferlab import runtime

    if method not in METHODS:
        raise UserError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}")
    target = Path(out)
    if target.exists() and (not target.is_dir() or (not is_backbone_folder(target) and any(target.iterdir()))):
        raise UserError(f"{target}: exists and is not a backbone folder; choose another --out")
    docs = read_corpus(corpus, text_column)
    log(f"corpus: {len(docs)} documents from {corpus}")
    show = runtime.show_progress() if progress is None else progress
    from transferlab.model import atomic_dir

    with atomic_dir(target) as tmp:
        t0 = time.perf_counter()
        if method == "mlm":
            manifest = train_mlm(docs, tmp, base, max_steps, batch_size, max_length, lr, seed=seed, progress=show)
        else:
            if base is not None:
                raise UserError("--base continues MLM training; word vectors start afresh")
            manifest = train_word_vectors(docs, tmp, method, dim, epochs, window, min_count, seed, show, sample)
        manifest = {"format": 1, **manifest, "corpus": str(corpus), "documents": len(docs),
                    "seconds": time.perf_counter() - t0, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


__all__ = ["MANIFEST", "METHODS", "copy_transformer_backbone", "is_backbone_folder", "load_mlm", "load_word_vectors",
           "mlm_loss", "pretrain_text", "read_corpus", "read_manifest", "train_mlm", "train_word_vectors",
           "transformer_backbone", "word_vectors_backbone"]
