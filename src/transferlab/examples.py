"""Small labelled datasets that ship inside installed packages, written out as folders so every command can use
them with no download: ``transferlab example-data digits --out DIR``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from transferlab.errors import UserError

DATASETS = ("digits",)


def write_digits(out: str | os.PathLike[str], per_class: int = 40, seed: int = 0) -> Path:
    """scikit-learn's 8x8 handwritten digits (UCI), upscaled to 64x64 PNGs, ``per_class`` per digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    root = Path(out)
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)
        chosen = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for i in chosen:
            pixels = (255 - digits.images[i] * (255 / 16)).astype(np.uint8)  # dark ink on white paper
            Image.fromarray(pixels, "L").resize((64, 64), Image.Resampling.BICUBIC).save(folder / f"digit_{i}.png")
    return root


def write_example(name: str, out: str | os.PathLike[str]) -> Path:
    if name == "digits":
        return write_digits(out)
    raise UserError(f"unknown example dataset {name!r}; available: {', '.join(DATASETS)}")
