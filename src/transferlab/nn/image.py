"""The image classifier network and its evaluation-time prediction: what training and a saved model both need.

* :class:`ClassifierNet`: a backbone plus a new linear head (with dropout). While a pretrained backbone is
  fine-tuned its BatchNorm layers stay in inference mode (frozen running statistics, as Keras does for a frozen
  base): batches of 16 images give statistics too noisy to replace the ImageNet ones. A network trained from
  scratch has no statistics worth keeping, so there BatchNorm trains normally.
* :func:`predict_images`: probabilities for any image inputs (paths, file bytes, PIL images, uint8 arrays) through
  the evaluation transform (shorter side to ``size / crop_pct``, centre crop), which equals the backbone's
  :class:`~transferlab.preprocessing.Preprocessing`, so a saved model predicts exactly as it was validated.

It lives here, below the strategies, so that loading a saved network needs no training code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from transferlab.backbones import get_backbone
from transferlab.data.images import load_image
from transferlab.errors import ImageDecodeError
from transferlab.preprocessing import _INTERPOLATION, Preprocessing

EVAL_BATCH = 32  # the smallest evaluation batch (what training's validation batches use too)


class ClassifierNet(nn.Module):
    """Backbone -> pooled features -> dropout -> new linear head."""

    def __init__(self, backbone: nn.Module, n_classes: int, dropout: float = 0.2, freeze_bn: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.feature_dim, n_classes)
        self.freeze_bn = freeze_bn

    def backbone_groups(self) -> list[list[nn.Module]]:
        return self.backbone.layer_groups()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last runs the depthwise convolutions of these mobile networks about twice as fast on CPU
        x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.dropout(self.backbone(x)))

    def train(self, mode: bool = True) -> ClassifierNet:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def set_trainable(self, n_top_groups: int) -> None:
        """Train the head and the last ``n_top_groups`` backbone groups; freeze everything else."""
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        groups = self.backbone_groups()
        for group in groups[len(groups) - n_top_groups:] if n_top_groups else []:
            for module in group:
                for p in module.parameters():
                    p.requires_grad_(True)
        for p in self.head.parameters():
            p.requires_grad_(True)


def build_net(backbone: str, n_classes: int, dropout: float, pretrained: bool = True) -> ClassifierNet:
    """The backbone from the registry (``pretrained=False``: random weights, no weight package read, as a loader
    wants before it loads saved weights) with a new head, channels-last."""
    spec = get_backbone(backbone)
    net = ClassifierNet(spec.build(pretrained=pretrained), n_classes, dropout, freeze_bn=pretrained)
    return net.to(memory_format=torch.channels_last)


# --- the evaluation transform ----------------------------------------------------------------------------------
def resize_shorter(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """The image resized as :meth:`Preprocessing.resize_and_crop` does before its centre crop, as uint8."""
    w, h = img.size
    scale = prep.resize / min(w, h)
    nw, nh = max(prep.size, round(w * scale)), max(prep.size, round(h * scale))
    return np.asarray(img.resize((nw, nh), _INTERPOLATION[prep.interpolation]), dtype=np.uint8)


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return pixels[top : top + size, left : left + size]


def eval_pixels(source: object, prep: Preprocessing) -> np.ndarray | str:
    """One input through the evaluation transform as (size, size, 3) uint8, or the reason it cannot be used."""
    try:
        img = load_image(source, draft_size=prep.resize)  # type: ignore[arg-type]
    except ImageDecodeError as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    return center_crop(resize_shorter(img, prep), prep.size)


def predict_images(net: nn.Module, prep: Preprocessing, inputs: Sequence[object], batch_size: int = EVAL_BATCH
                   ) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Probabilities for the usable inputs (evaluation transform), their indices, and why the others failed.

    Inputs are paths, file bytes, PIL images or uint8 arrays, mixed as they come. Each is decoded once, on a worker
    thread one batch ahead of the network; batches hold ``max(batch_size, 32)`` consecutive usable inputs.
    """
    from transferlab._torch import set_torch_threads

    set_torch_threads()
    size = max(batch_size, EVAL_BATCH)
    failures: dict[int, str] = {}

    def batches() -> Iterator[tuple[list[int], np.ndarray]]:
        indices: list[int] = []
        items: list[np.ndarray] = []
        for i, source in enumerate(inputs):
            pixels = eval_pixels(source, prep)
            if isinstance(pixels, str):
                failures[i] = pixels
                continue
            indices.append(i)
            items.append(pixels)
            if len(items) == size:
                yield indices, prep.normalize_batch(np.stack(items))
                indices, items = [], []
        if items:
            yield indices, prep.normalize_batch(np.stack(items))

    net.eval()
    ok: list[int] = []
    out: list[np.ndarray] = []
    produce = batches()
    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
        future = pool.submit(next, produce, None)
        while (batch := future.result()) is not None:
            future = pool.submit(next, produce, None)
            indices, x = batch
            out.append(torch.softmax(net(torch.from_numpy(x)).float(), 1).numpy())
            ok.extend(indices)
    proba = np.concatenate(out) if out else np.zeros((0, 0))
    return proba, ok, dict(sorted(failures.items()))


def predict_paths(net: nn.Module, prep: Preprocessing, paths: Sequence[str], batch_size: int = EVAL_BATCH
                  ) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """:func:`predict_images` on file paths (the name training code and benchmarks use)."""
    return predict_images(net, prep, paths, batch_size)
