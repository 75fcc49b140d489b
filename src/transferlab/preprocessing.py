"""Image preprocessing that every backbone declares as data, applied with Pillow and NumPy (no torch needed).

A backbone's :class:`Preprocessing` is stored in every saved model and in the feature-cache key, so a model always
sees its inputs prepared exactly as in training.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocessing:
    """How to turn an RGB image into the backbone's input tensor (C, H, W), float32.

    ``style="normalize"``: scale to 0..1, then ``(x - mean) / std`` (timm / torchvision style).
    ``style="caffe"``: RGB -> BGR, 0..255, minus ``mean`` given in BGR order (Caffe / Keras style).
    """

    size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    style: str = "normalize"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.style not in ("normalize", "caffe"):
            raise ValueError(f"unknown preprocessing style {self.style!r}")

    @property
    def resize(self) -> int:
        """Shorter side before the centre crop."""
        return int(math.floor(self.size / self.crop_pct))

    def with_size(self, size: int) -> Preprocessing:
        return replace(self, size=int(size))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        d = dict(d)
        d["mean"] = tuple(d["mean"])
        d["std"] = tuple(d["std"])
        return cls(**d)

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # --- the transform itself -------------------------------------------------------------------------------
    def resize_and_crop(self, img: Image.Image) -> Image.Image:
        """Resize the shorter side to :attr:`resize`, then centre-crop :attr:`size` x :attr:`size`."""
        w, h = img.size
        scale = self.resize / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        img = img.resize((nw, nh), _INTERPOLATION[self.interpolation])
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        """Resized and cropped pixels, (H, W, 3) uint8: a quarter of the memory of the float input."""
        return np.asarray(self.resize_and_crop(img), dtype=np.uint8)

    def normalize_batch(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> normalised float32 (N, 3, H, W). The uint8 pixels are transposed first, so each
        per-channel constant applies to a whole contiguous plane (several times faster than broadcasting a (3,)
        constant over the last axis); every element gets the same float32 operations, so the values are unchanged."""
        x = np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8).transpose(0, 3, 1, 2)).astype(np.float32)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        if self.style == "caffe":
            return np.ascontiguousarray(x[:, ::-1] - mean)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        x *= 1.0 / (255.0 * std)
        x -= mean / std
        return x

    def __call__(self, img: Image.Image) -> np.ndarray:
        return self.normalize_batch(self.to_uint8(img)[None])[0]
