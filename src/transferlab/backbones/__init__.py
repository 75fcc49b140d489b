"""The backbone registry: every pretrained network transferlab can use, by name, for images and for text.

Adding a backbone is one new module and one line here:

- an image network: a module with a ``specs()`` function returning :class:`BackboneSpec` objects (a preprocessing
  and a factory of a :class:`~transferlab.backbones.net.BackboneNet`), e.g. ``squeezenet.py``;
- a text encoder: a module with a ``specs()`` function returning :class:`TextEncoderSpec` objects (a factory of a
  frozen encoder with ``embed(texts)``), e.g. ``glove.py``;

then its module in ``_FAMILIES``. A folder written by ``transferlab pretrain-text`` (it carries a manifest) is a
backbone too: :func:`get_backbone` answers for its path. Nothing here imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferlab.backbones import efficientnet_lite, glove, minilm, mpnet, squeezenet
from transferlab.backbones.base import Backbone, BackboneSpec, TextEncoderSpec
from transferlab.backbones.folder import (
    MANIFEST,
    copy_transformer_backbone,
    folder_spec,
    is_backbone_folder,
    load_word_vectors,
    read_manifest,
    transformer_backbone,
    word_vectors_backbone,
)
from transferlab.errors import UserError

DEFAULT_BACKBONE = "efficientnet_lite0"  # images
DEFAULT_TEXT_ENCODER = minilm.NAME
MODALITIES = ("image", "text")
_FAMILIES = [efficientnet_lite, squeezenet, minilm, mpnet, glove]
_REGISTRY: dict[str, Any] = {}


def register(spec: Backbone) -> None:
    """Add (or replace) a backbone under ``spec.name``; the families above are registered at import."""
    if spec.modality not in MODALITIES:
        raise ValueError(f"backbone {spec.name!r}: modality must be one of {MODALITIES}, got {spec.modality!r}")
    _REGISTRY[spec.name] = spec


for _family in _FAMILIES:
    for _spec in _family.specs():
        register(_spec)


def get_backbone(name: str | os.PathLike[str]) -> Any:
    """The spec registered as ``name`` (a :class:`BackboneSpec` for images, a :class:`TextEncoderSpec` for text),
    or the spec of a ``pretrain-text`` folder at that path."""
    key = str(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if Path(key).is_dir():
        return folder_spec(key)  # a clear error when the folder has no manifest
    raise UserError(f"unknown backbone {key!r}; available: {', '.join(sorted(_REGISTRY))}, or a folder written by "
                    "`transferlab pretrain-text`")


def encoder_name(model_id: str) -> str:
    """The registry name of the text encoder that saved models record as ``model_id`` (``all-mpnet-base-v2`` ->
    ``mpnet``); unknown ids (older saved models) mean MiniLM, the only transformer they could use."""
    for spec in list_backbones("text"):
        if model_id in (spec.model_id, spec.name):
            return spec.name
    return minilm.NAME


def packaged_transformer(name: str) -> str | None:
    """The folder of a packaged transformer body by its registry name (``minilm``, ``mpnet``: a spec with a
    ``body_folder``), else None; a clear error when it is registered but not installed."""
    spec = _REGISTRY.get(name)
    body_folder = getattr(spec, "body_folder", None)
    return body_folder() if body_folder is not None else None


def transformer_folder(name: str | os.PathLike[str]) -> str:
    """The folder of a transformer body to embed with or fine-tune: a packaged one by name (``--backbone mpnet``),
    or a folder written by ``pretrain-text --method mlm``."""
    return packaged_transformer(str(name)) or transformer_backbone(name)


MPNET_MISSING = "mpnet is not installed (`transferlab models` says how to add it)"


def trainable_text_body() -> tuple[str, str]:
    """(body, reason): the text body to fine-tune by default (the QA reader's teacher, ``auto``'s ``text_finetune``).
    mpnet where the CPU has bf16 matrix units (AMX, or AVX512-BF16) and mpnet is installed: trained in bf16 autocast
    it costs ~3.5x MiniLM's time for a much stronger body. Elsewhere MiniLM: without bf16 units mpnet would train for
    hours."""
    from transferlab._torch import native_bf16

    if not native_bf16():
        return minilm.NAME, "this CPU has no bf16 matrix units (AMX, or AVX512-BF16), where mpnet would train for hours"
    if not get_backbone(mpnet.NAME).is_installed():
        return minilm.NAME, MPNET_MISSING
    return mpnet.NAME, ("the CPU has bf16 matrix units (AMX, or AVX512-BF16), so the stronger mpnet body trains in "
                        "bf16 within minutes")


# mpnet without bf16 matrix units: the top layers that text_finetune and text_fewshot train (the 8 below run once,
# their outputs kept)
MPNET_TOP_LAYERS = 4


def fewshot_text_body() -> tuple[str, int | None, str]:
    """(body, train_layers, reason): what ``auto``'s ``text_fewshot`` tunes: mpnet wherever it is installed (its
    pairs are capped at 2,000). With bf16 matrix units the whole body in bf16; without them its top
    :data:`MPNET_TOP_LAYERS` layers in float32 on the kept outputs of the 8 below: sst2 on 2 AVX2 cores, 8 per class,
    test accuracy 0.871 (mean of 5 draws; 1.8-2.3 min of fitting each; draws 0-2: 0.869 / 0.871 / 0.865 where the
    whole body took 6-7 min each for 0.863 / 0.866 / 0.872; MiniLM, draw 0: 0.757); 64 per class, draw 0: 0.908 in
    3.9 min (whole body: 0.911 in 12.3 min)."""
    if not get_backbone(mpnet.NAME).is_installed():
        return minilm.NAME, None, MPNET_MISSING
    body, why = trainable_text_body()
    if body == mpnet.NAME:  # bf16 units: as every mpnet training there
        return body, None, why
    return (mpnet.NAME, MPNET_TOP_LAYERS,
            "this CPU has no bf16 matrix units (AMX, or AVX512-BF16), so the pairs tune mpnet's top "
            f"{MPNET_TOP_LAYERS} of 12 layers "
            "on the kept outputs of the 8 below: ~3x faster than the whole body, as accurate with 8 per class on "
            "sst2, ~10 points over MiniLM")


def finetuned_text_body() -> tuple[str, int | None, str]:
    """(body, train_layers, reason): what ``auto``'s ``text_finetune`` trains. Where the CPU has bf16 matrix units
    (AMX): mpnet end to end in bf16 (as :func:`trainable_text_body`). Without them, mpnet's top
    :data:`MPNET_TOP_LAYERS` layers in float32 on the kept outputs of the 8 below (sst2: 0.925, 13.7 min for the whole
    ``train --strategy auto`` on 2 AVX2 cores, where MiniLM end to end scores 0.88). MiniLM where mpnet is not
    installed."""
    if not get_backbone(mpnet.NAME).is_installed():
        return minilm.NAME, None, MPNET_MISSING
    body, why = trainable_text_body()
    if body == mpnet.NAME:  # bf16 units: the whole body
        return body, None, why
    return (mpnet.NAME, MPNET_TOP_LAYERS,
            "this CPU has no bf16 matrix units (AMX, or AVX512-BF16), so only mpnet's top "
            f"{MPNET_TOP_LAYERS} of 12 layers train, on "
            "the kept outputs of the 8 below (~3x faster per step than the whole body)")


def list_backbones(modality: str | None = None) -> list[Any]:
    """Registered specs in registration order; ``modality`` ("image" or "text") keeps one kind. Callers that
    build or extract image networks must ask for "image"."""
    return [s for s in _REGISTRY.values() if modality is None or s.modality == modality]


def backbone_rows(modality: str | None = None) -> list[dict[str, Any]]:
    """One row per registered backbone for the ``models`` command: what it is, how big, how fast, what for.

    ``items_per_second`` is images/s (frozen extraction, ONNX Runtime, batch 32) or sentences/s (cold cache):
    measured on this machine where ``models --measure`` ran here, else on the project's 2-core machines by
    ``benchmarks/extraction_speed.py`` and ``benchmarks/text_encoder_speed.py`` (a text encoder's figure for the path
    this CPU takes: bfloat16 or float32); None when not measured. ``speed_source`` says which."""
    from transferlab.benchmarks_data import speed_on_this_machine

    rows = []
    for spec in list_backbones(modality):
        image = isinstance(spec, BackboneSpec)
        speed, source = speed_on_this_machine(spec.name)
        rows.append({
            "name": spec.name,
            "modality": spec.modality,
            "params_millions": round(spec.num_params / 1e6, 2),
            "size_mb": spec.size_mb(),
            "feature_dim": spec.feature_dim,
            "input_size": spec.preprocessing.size if image else None,
            "imagenet_top1": spec.imagenet_top1 if image else None,
            "items_per_second": speed,
            "speed_source": source,
            "description": spec.description,
            "installed": spec.is_installed(),
            "how_to_add": spec.how_to_add,
        })
    return rows


__all__ = ["DEFAULT_BACKBONE", "DEFAULT_TEXT_ENCODER", "MANIFEST", "Backbone", "BackboneSpec", "TextEncoderSpec",
           "backbone_rows", "copy_transformer_backbone", "encoder_name", "folder_spec", "get_backbone",
           "is_backbone_folder", "list_backbones", "load_word_vectors", "packaged_transformer", "read_manifest",
           "register", "transformer_backbone", "transformer_folder", "word_vectors_backbone"]
