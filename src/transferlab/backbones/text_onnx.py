"""Sentence embeddings through ONNX Runtime: a transformer body plus mean pooling and L2 normalisation exported as
one graph, run on length-bucketed batches.

Texts are tokenised once without padding, sorted by token count and cut into batches of similar length (at most
``batch_size`` texts and :data:`TOKEN_BUDGET` padded tokens each), so short sentences never pay for a long one's
padding. The graph is exported on first use into the feature cache's ``onnx/`` folder (this needs torch), keyed by
the model and its weights; later runs only load it. Its outputs equal sentence-transformers' ``encode(...,
normalize_embeddings=True)`` to float32 rounding (``benchmarks/text_encoder_speed.py`` checks cosine >= 0.9999).
Nothing here knows which model it runs: the caller passes the folder and a key.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

EXPORT_FORMAT = 1  # bump when the exported graph changes, so cached exports are redone
TOKEN_BUDGET = 4096  # padded tokens per batch: bounds memory for long texts, keeps short ones in big batches


def export_sentence_graph(model: Any, path: Path) -> Path:
    """Export ``model`` (a Hugging Face encoder in eval mode) + mean pooling + L2 norm to ``path`` (atomic)."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, body: Any) -> None:
            super().__init__()
            self.body = body

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    ids = torch.ones((2, 8), dtype=torch.long)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model).eval(), (ids, torch.ones_like(ids)), str(tmp), dynamo=False,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"], opset_version=17,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
        )
    os.replace(tmp, path)
    return path


@lru_cache(maxsize=4)
def session(path: str) -> Any:
    """An ONNX Runtime session on every core the project allows (``TRANSFERLAB_THREADS``), without busy-waiting."""
    import onnxruntime as ort

    from transferlab._torch import torch_thread_count

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch_thread_count()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def length_buckets(lengths: Sequence[int], batch_size: int, token_budget: int = TOKEN_BUDGET) -> list[np.ndarray]:
    """Indices grouped into batches of similar token count (sorted), each within ``batch_size`` texts and
    ``token_budget`` padded tokens (a single text longer than the budget still gets its own batch)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        while (end < len(order) and end - start < batch_size
               and (end - start + 1) * lengths[order[end]] <= token_budget):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask) int64 arrays, each sequence padded with ``pad_id`` to the longest of the batch."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, np.int64)
    mask = np.zeros((len(sequences), width), np.int64)
    for row, s in enumerate(sequences):
        ids[row, : len(s)] = s
        mask[row, : len(s)] = 1
    return ids, mask


def embed_with_session(run: Callable[[dict[str, np.ndarray]], np.ndarray], token_ids: Sequence[Sequence[int]],
                       pad_id: int, dim: int, batch_size: int, on_batch: Callable[[int], None] | None = None,
                       token_budget: int = TOKEN_BUDGET, streams: int = 1) -> np.ndarray:
    """Embeddings of already tokenised texts, batch by length bucket; ``run`` maps a feed (int64 ``input_ids`` and
    ``attention_mask``) to (batch, dim): an ONNX Runtime session, or a PyTorch body (the bf16 backend).

    ``streams`` > 1 runs that many batches at once, each in its own thread, longest batches first (the short ones
    fill in at the end); ``run`` must then be safe to call from several threads (a PyTorch body set to one
    intra-op thread per stream is: :class:`~transferlab.backbones.minilm.SentenceEncoder`'s bf16 backend). A batch's
    vectors do not depend on the order batches run in."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.zeros((len(token_ids), dim), np.float32)

    def one(idx: np.ndarray) -> None:
        ids, mask = pad_batch([token_ids[i] for i in idx], pad_id)
        out[idx] = run({"input_ids": ids, "attention_mask": mask})
        if on_batch is not None:
            on_batch(len(idx))

    batches = length_buckets([len(t) for t in token_ids], batch_size, token_budget)
    if streams <= 1 or len(batches) < 2:
        for idx in batches:
            one(idx)
        return out
    with ThreadPoolExecutor(max_workers=streams) as pool:
        for _ in pool.map(one, batches[::-1]):
            pass
    return out
