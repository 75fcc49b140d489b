"""Shared plumbing for strategies that train on cached frozen features."""

from __future__ import annotations

from typing import Any

import numpy as np

from transferlab import runtime
from transferlab.errors import DataError
from transferlab.features.images import FeatureExtractor

LAYERS = {"top": ("features",), "mid": ("mid",), "top+mid": ("features", "mid")}


def cached_features(X: Any, backbone: str, layer: str = "top", desc: str = "extracting features",  # noqa: N803
                    strict: bool = True) -> tuple[np.ndarray, list[int]]:
    """Features of every item of ``X`` (rows in order) and the indices that could be used."""
    if layer not in LAYERS:
        raise DataError(f"unknown feature layer {layer!r}; choose one of {', '.join(LAYERS)}")
    extractor = FeatureExtractor(backbone, cache=runtime.get_cache(), progress=runtime.show_progress())
    result = extractor.extract(X.paths, outputs=LAYERS[layer], desc=desc)
    if strict and result.failures:
        first = next(iter(result.failures.items()))
        raise DataError(f"{X.paths[first[0]]}: {first[1]} ({len(result.failures)} unusable file(s))")
    return np.concatenate([result.arrays[o] for o in LAYERS[layer]], axis=1), result.ok
