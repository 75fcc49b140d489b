"""The torch side of the backbone contract.

Every family implements the same questions (layer groups, a run through the groups, pooling, the ImageNet head),
so fine-tuning, unfreezing and discriminative learning rates are written once for all backbones.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class BackboneNet(nn.Module):
    """A pretrained network split into layer groups, with its pooled features and its ImageNet head.

    Subclasses implement :meth:`layer_groups` (input to output) and
    :meth:`imagenet_head`. ``forward`` returns pooled features; :meth:`forward_all` returns features, ImageNet
    logits and pooled features of earlier stages (lower-level features for data far from ImageNet).
    """

    feature_dim: int
    mid_stage_indices: tuple[int, ...] = ()

    def layer_groups(self) -> list[list[torch.nn.Module]]:
        """The modules of each layer group, from the input side to the output side."""
        raise NotImplementedError

    def run_groups(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run every group; return the final map and the outputs of ``mid_stage_indices``."""
        mids = []
        for i, group in enumerate(self.layer_groups()):
            for module in group:
                x = module(x)
            if i in self.mid_stage_indices:
                mids.append(x)
        return x, mids

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean(dim=(2, 3))

    def imagenet_head(self, fmap: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap, _ = self.run_groups(x)
        return self.pool(fmap)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap, mids = self.run_groups(x)
        mid = torch.cat([m.mean(dim=(2, 3)) for m in mids], dim=1)
        return self.pool(fmap), self.imagenet_head(fmap), mid


class AllOutputs(nn.Module):
    """Wraps a BackboneNet so that ``forward`` returns (features, logits, mid) for ONNX export."""

    def __init__(self, net: BackboneNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net.forward_all(x)
