"""The backbone registry: every pretrained network transferlab can use, by name.

A new family is one new module with a ``specs()`` function returning :class:`BackboneSpec` objects, plus one line
in ``_FAMILIES``. Nothing here imports torch.
"""

from __future__ import annotations

from transferlab.backbones import efficientnet_lite, squeezenet
from transferlab.backbones.base import BackboneSpec
from transferlab.errors import UserError

DEFAULT_BACKBONE = "efficientnet_lite0"
_FAMILIES = [efficientnet_lite, squeezenet]
_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> None:
    _REGISTRY[spec.name] = spec


for _family in _FAMILIES:
    for _spec in _family.specs():
        register(_spec)


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown backbone {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def list_backbones(modality: str | None = None) -> list[BackboneSpec]:
    return [s for s in _REGISTRY.values() if modality is None or s.modality == modality]


__all__ = ["DEFAULT_BACKBONE", "BackboneSpec", "get_backbone", "list_backbones", "register"]
