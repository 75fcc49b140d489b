"""How fast a backbone embeds on *this* machine, measured now (``transferlab models --measure``).

The same protocols as the project's benchmarks, made small enough for a command: an image backbone runs
preprocessed batches of 32 through ONNX Runtime (``benchmarks/extraction_speed.py``: best of 3 after a warm-up,
decoding not counted); a text encoder embeds :data:`SENTENCES` sentences of :data:`WORDS` common words (about an
sst2 test sentence's length, ``benchmarks/text_encoder_speed.py``: best of 2 after a warm-up, the feature cache
bypassed, on the path this CPU takes by default: bfloat16 with bf16 matrix units, else ONNX Runtime float32).
Loading the model and exporting its graph (once per cache folder) happen in the warm-up and are not counted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

IMAGE_BATCH = 32
SENTENCES = 64
WORDS = 19  # sst2's test sentences average 19 words
_VOCABULARY = ("the film is a story of two friends who find their way home after years apart and it moves "
               "slowly but the acting makes every scene feel honest warm funny sad bright dull long short new "
               "old great small young people world life day night time music city water light family").split()


def sample_sentences(n: int = SENTENCES, words: int = WORDS, seed: int = 0) -> list[str]:
    """``n`` sentences of ``words`` common English words each (the same ones every time)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_VOCABULARY, size=words)) for _ in range(n)]


def _best_rate(fn: Callable[[], Any], items: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return items / max(min(times), 1e-9)


def measure_items_per_second(name: str) -> float:
    """Images (image backbones) or sentences (text encoders) per second of registered backbone ``name`` here."""
    import tempfile

    from transferlab.backbones import get_backbone

    spec = get_backbone(name)
    if spec.modality == "image":
        from transferlab.cache import FeatureCache
        from transferlab.features.images import FeatureExtractor

        size = spec.preprocessing.size
        batch = np.random.default_rng(0).normal(size=(IMAGE_BATCH, 3, size, size)).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            extractor = FeatureExtractor(spec, cache=FeatureCache(tmp), progress=False)
            extractor.run_arrays(batch)  # warm-up: loads (and exports) the network
            return _best_rate(lambda: extractor.run_arrays(batch), IMAGE_BATCH, 3)
    encoder = spec.encoder()
    for attribute, value in (("use_cache", False), ("progress", False)):
        if hasattr(encoder, attribute):
            setattr(encoder, attribute, value)
    texts = sample_sentences()
    encoder.embed(texts[:2])  # warm-up: loads the model (and exports its graph into the cache folder once)
    return _best_rate(lambda: encoder.embed(texts), len(texts), 2)
