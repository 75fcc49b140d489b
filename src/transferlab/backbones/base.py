"""The backbone contract: what every registered pretrained network answers.

A :class:`BackboneSpec` is plain data (name, preprocessing, feature width, sizes) plus a factory, importable without
torch, so that a warm-cache run never pays for importing it. The factory returns a :class:`~.net.BackboneNet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transferlab.preprocessing import Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    from transferlab.backbones.net import BackboneNet


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    modality: str
    preprocessing: Preprocessing
    feature_dim: int
    mid_feature_dim: int
    num_params: int
    imagenet_top1: float | None
    weights_package: str
    factory: Callable[[bool], Any] = field(repr=False, compare=False)
    description: str = ""
    weights_version: str = "1"

    def build(self, pretrained: bool = True) -> BackboneNet:
        """Create the network; ``pretrained=False`` gives the same architecture randomly initialised."""
        return self.factory(pretrained)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "modality": self.modality,
            "params_millions": round(self.num_params / 1e6, 2),
            "feature_dim": self.feature_dim,
            "mid_feature_dim": self.mid_feature_dim,
            "input_size": self.preprocessing.size,
            "imagenet_top1": self.imagenet_top1,
            "weights_package": self.weights_package,
            "description": self.description,
        }
