"""MiniLM (:data:`transferlab.backbones.minilm.MINILM`, from its weights package) as a trainable classifier: the
BERT body, mean pooling over the attention mask, dropout and a new linear head. Used by ``text_finetune`` and by the
predictor of its saved models, which rebuilds the body from the saved ``transformer/config.json`` (no package needed
then).

Layer groups, bottom to top, for discriminative learning rates and gradual unfreezing: the embeddings (with MPNet's
relative position bias, which every layer reads), then the transformer layers in ``layers_per_group`` blocks.

Training only the top layers (``text_finetune``'s ``train_layers``): the frozen bottom runs once over the texts
(:func:`lower_hidden_states`, kept as float16) and :class:`TopOfClassifier` runs the top layers and the head on those
hidden states; the same body module serves both (:func:`layers_only` narrows it for one call), so the saved model is
the whole network as usual.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

# the offline loading of MiniLM lives with its registry entry (backbones/minilm.py); nn builds on it
from transferlab.backbones.minilm import TOKENIZER_FILES, _transformers, minilm_path
from transferlab.backbones.text_onnx import pad_batch


class TransformerClassifier(nn.Module):
    """``forward((input_ids, attention_mask)) -> logits``."""

    def __init__(self, body: nn.Module, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(body.config.hidden_size, n_classes)

    def embed(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, mask = inputs
        return _mean_pool(self.body(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.head(self.dropout(self.embed(inputs)))

    def layer_groups(self, layers_per_group: int = 2) -> list[list[nn.Module]]:
        layers = list(self.body.encoder.layer)
        shared = getattr(self.body.encoder, "relative_attention_bias", None)  # MPNet: one bias table for all layers
        groups: list[list[nn.Module]] = [[self.body.embeddings] + ([shared] if shared is not None else [])]
        for s in range(0, len(layers), layers_per_group):
            groups.append(layers[s : s + layers_per_group])
        return groups


class _Given(nn.Module):
    """Stands in for a body's embeddings: hands on the hidden states passed as ``inputs_embeds``."""

    def forward(self, input_ids: object = None, inputs_embeds: torch.Tensor | None = None, **kwargs: object
                ) -> torch.Tensor | None:
        return inputs_embeds


@contextmanager
def layers_only(body: nn.Module, start: int, stop: int, given: bool = False) -> Iterator[None]:
    """For one call, ``body`` runs only its encoder layers ``start:stop``; ``given``: no embeddings either, the call's
    ``inputs_embeds`` are the hidden states entering layer ``start`` (BERT and MPNet bodies: their masks and MPNet's
    relative position bias are rebuilt from those inputs as for the whole body)."""
    embeddings, layers = body.embeddings, body.encoder.layer
    body.encoder.layer = nn.ModuleList(list(layers)[start:stop])
    if given:
        body.embeddings = _Given()
    try:
        yield
    finally:
        body.embeddings, body.encoder.layer = embeddings, layers


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


MEMORY_SHARE = 0.25  # the kept outputs stay in RAM up to this share of the memory available; beyond it, in a file


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (``MemAvailable``; where that is unknown, the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 40  # unknown: no spill


def _states_buffer(tokens: int, width: int, store: Path | None, memory: int | None) -> tuple[np.ndarray, str]:
    """Where the kept outputs go: ``store`` (a float16 file, kept for a resumed run), a temporary float16 file when
    they would take more than :data:`MEMORY_SHARE` of the available memory, else RAM; and a word on which."""
    import tempfile

    nbytes = tokens * width * 2
    if store is not None:
        store.parent.mkdir(parents=True, exist_ok=True)  # written under another name, renamed when complete
        return np.memmap(store.with_name(store.name + ".partial"), np.float16, "w+", shape=(tokens, width)), \
            f"kept in {store}"
    budget = MEMORY_SHARE * (available_memory() if memory is None else memory)
    if nbytes > budget:  # an unlinked temporary file: the page cache holds what fits, the disk the rest
        return (np.memmap(tempfile.TemporaryFile(prefix="transferlab-states-"), np.float16, "w+",
                          shape=(tokens, width)),
                f"{nbytes / 2**30:.1f} GiB, more than {MEMORY_SHARE:.0%} of the memory available: kept in a "
                f"temporary file in {tempfile.gettempdir()}")
    return np.empty((tokens, width), np.float16), f"{nbytes / 2**30:.2f} GiB in memory"


def lower_hidden_states(body: nn.Module, encoded: Sequence[Sequence[int]], n_lower: int, batch_size: int = 64,
                        bf16: bool = False, progress: bool = False, desc: str = "frozen layers",
                        store: Path | None = None, memory: int | None = None) -> list[np.ndarray]:
    """The hidden states leaving the body's bottom ``n_lower`` layers (no dropout), one (tokens, hidden) float16
    array per encoded text: computed once, they feed every epoch of the layers above.

    They are views of one float16 buffer: in memory; or in a file, when they would take more than
    :data:`MEMORY_SHARE` of the available memory (``memory``: that figure in bytes, None = measure it), or when
    ``store`` names the file (a checkpointed run: a resumed run reads a complete file back instead of recomputing)."""
    import json

    from transferlab.progress import log, progress_bar

    width = int(body.config.hidden_size)
    lengths = np.asarray([len(e) for e in encoded], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = int(offsets[-1])
    if tokens == 0:
        return [np.zeros((0, width), np.float16) for _ in encoded]
    shape = {"tokens": tokens, "width": width, "n_lower": int(n_lower), "bf16": bool(bf16)}
    done = store.with_name(store.name + ".json") if store is not None else None
    if store is not None and done is not None and store.exists() and done.exists() \
            and json.loads(done.read_text()) == shape:  # a complete file from the same cut of the same texts
        buf: np.ndarray = np.memmap(store, np.float16, "r", shape=(tokens, width))
        log(f"{desc}: read back from {store} (computed by the interrupted run)")
    else:
        buf, where = _states_buffer(tokens, width, store, memory)
        log(f"{desc}: outputs of {len(encoded)} texts, {where}")
        body.eval()
        bar = progress_bar(total=len(encoded), desc=desc, unit="text", enabled=progress)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), \
                layers_only(body, 0, n_lower):
            for chunk, (ids, mask) in eval_batches(encoded, np.arange(len(encoded)), batch_size):
                hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state.float().numpy()
                for j, i in enumerate(chunk):
                    buf[offsets[i]: offsets[i + 1]] = hidden[j, : lengths[i]]
                bar.update(len(chunk))
        bar.close()
        if store is not None and done is not None:
            assert isinstance(buf, np.memmap)
            buf.flush()
            os.replace(store.with_name(store.name + ".partial"), store)  # the mapping follows the file
            done.write_text(json.dumps(shape))
    return [buf[offsets[i]: offsets[i + 1]] for i in range(len(encoded))]


def collate_hidden(states: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden, mask): cached hidden states padded with zeros to the longest, float32, and their attention mask."""
    longest = max(len(h) for h in states)
    hidden = np.zeros((len(states), longest, states[0].shape[1]), np.float32)
    mask = np.zeros((len(states), longest), np.int64)
    for j, h in enumerate(states):
        hidden[j, : len(h)] = h
        mask[j, : len(h)] = 1
    return torch.from_numpy(hidden), torch.from_numpy(mask)


class TopOfClassifier(nn.Module):
    """The top ``n_top`` layers of a :class:`TransformerClassifier`'s body and its head, reading the hidden states
    of the layers below (:func:`lower_hidden_states`): ``forward((hidden, mask)) -> logits``."""

    def __init__(self, net: TransformerClassifier, n_top: int) -> None:
        super().__init__()
        self.net = net
        self.n_top = int(n_top)

    def embed(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        hidden, mask = inputs
        n = len(self.net.body.encoder.layer)
        with layers_only(self.net.body, n - self.n_top, n, given=True):
            out = self.net.body(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        return _mean_pool(out, mask)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.net.head(self.net.dropout(self.embed(inputs)))


def load_pretrained_body(folder: str | None = None) -> tuple[nn.Module, object]:
    """(body, tokenizer) from the packaged MiniLM folder (or another local folder)."""
    tf = _transformers()
    folder = folder or minilm_path()
    return (tf.AutoModel.from_pretrained(folder, local_files_only=True),
            tf.AutoTokenizer.from_pretrained(folder, local_files_only=True))


def body_from_config(folder: Path) -> tuple[nn.Module, object]:
    """An untrained body with the saved architecture, and the saved tokenizer (weights are loaded afterwards)."""
    tf = _transformers()
    config = tf.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    return tf.AutoModel.from_config(config), tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def copy_tokenizer_files(source: str, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(source) / name).exists():
            shutil.copyfile(Path(source) / name, target / name)


def tokenize(tokenizer: object, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length`` (with [CLS] and [SEP]), unpadded."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]  # type: ignore[operator]


def collate(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) tensors padded with 0 to the longest sequence (the same padding as the frozen encoders)."""
    ids, mask = pad_batch(sequences)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def bucketed_order(lengths: np.ndarray, indices: np.ndarray, batch_size: int, rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (little padding, so much faster on CPU): shuffle, sort within chunks of
    50 batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(indices)
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[b : b + batch_size] for b in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def length_sorted_chunks(lengths: np.ndarray, indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """``indices`` in order of ``lengths[index]`` (stable), cut into chunks of ``batch_size``, for inference."""
    idx = np.asarray(indices, np.int64)
    idx = idx[np.argsort(np.asarray(lengths)[idx], kind="stable")]
    for s in range(0, len(idx), batch_size):
        yield idx[s : s + batch_size]


def eval_batches(encoded: Sequence[Sequence[int]], indices: np.ndarray, batch_size: int
                 ) -> Iterator[tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor]]]:
    """(indices, inputs) in order of length, for inference."""
    lengths = np.asarray([len(s) for s in encoded])
    for chunk in length_sorted_chunks(lengths, indices, batch_size):
        yield chunk, collate([encoded[i] for i in chunk])


def predict_transformer(net: TransformerClassifier, tokenizer: object, texts: Sequence[str], max_length: int,
                        batch_size: int = 64, bf16: bool = False) -> np.ndarray:
    """Class probabilities, (n, classes) float32; ``bf16``: under CPU bfloat16 autocast (a model trained in it, on a
    CPU with bf16 matrix units: ~2x faster)."""
    encoded = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), net.head.out_features), np.float32)
    net.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for chunk, inputs in eval_batches(encoded, np.arange(len(texts)), batch_size):
            out[chunk] = torch.softmax(net(inputs).float(), 1).numpy()
    return out


def embed_texts(body: nn.Module, tokenizer: object, texts: list[str], max_length: int, batch_size: int = 64
                ) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings of the (tuned) body, as a (n, hidden) float32 array: what
    ``text_fewshot`` trains its head on and what the loader of its saved models feeds that head."""
    encoder = TransformerClassifier(body, 1, 0.0).eval()
    encoded = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), body.config.hidden_size), np.float32)
    with torch.inference_mode():
        for chunk, inputs in eval_batches(encoded, np.arange(len(texts)), batch_size):
            out[chunk] = torch.nn.functional.normalize(encoder.embed(inputs), dim=1).numpy()
    return out
