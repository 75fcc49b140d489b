"""Frozen features of any modality: image backbones through ONNX Runtime, text encoders, TF-IDF;
all through the content-keyed cache.

:func:`extract_features` is the one call for "features of these items from that backbone", whatever the backbone's
modality, so the rank and compare workflows treat image networks and text encoders alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from transferlab.features.images import Extracted


def extract_features(backbone: str | os.PathLike[str], items: Sequence[str], outputs: Sequence[str] = ("features",),
                     desc: str = "extracting features", max_length: int = 256) -> Extracted:
    """Frozen features of ``items`` from the registered backbone (or ``pretrain-text`` folder) ``backbone``.

    Image backbones take file paths and return every requested output (``features``, ``logits``, ``mid``), with
    unreadable files in ``failures``; text encoders take texts and return ``{"features": (n, dim)}`` for all of
    them (``ok`` = every index), embedded through the feature cache exactly as the text strategies embed them
    (same vectors, same cache keys; ``max_length`` is the MiniLM truncation in tokens)."""
    from transferlab import runtime
    from transferlab.backbones import get_backbone
    from transferlab.features.images import Extracted, FeatureExtractor

    spec = get_backbone(backbone)
    if spec.modality == "image":
        extractor = FeatureExtractor(spec.name, cache=runtime.get_cache(), progress=runtime.show_progress())
        return extractor.extract(list(items), outputs, desc)
    unknown = [o for o in outputs if o != "features"]
    if unknown:
        from transferlab.errors import UserError

        raise UserError(f"{spec.name} is a text encoder: it gives 'features' only, not {', '.join(unknown)}")
    encoder = spec.encoder(max_length=max_length)
    if hasattr(encoder, "desc"):
        encoder.desc = desc
    vectors = encoder.embed([str(t) for t in items])
    return Extracted(arrays={"features": vectors}, ok=list(range(len(items))), failures={})


__all__ = ["extract_features"]
