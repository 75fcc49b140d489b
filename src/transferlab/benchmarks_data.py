"""Speeds measured on the project's 2-core machines, shown by `models`: images per second of the image backbones
(``benchmarks/extraction_speed.py``) and sentences per second of the text encoders
(``benchmarks/text_encoder_speed.py``), both in ``resources/backbone_speed.json``."""

from __future__ import annotations

import json
from pathlib import Path

_MEASURED = Path(__file__).parent / "resources" / "backbone_speed.json"
SPEED_FIELDS = ("images_per_second", "sentences_per_second")
FLOAT32_FIELD = "float32_sentences_per_second"


def measured_speed(name: str, float32: bool = False) -> float | None:
    """Items per second of backbone ``name`` (images or sentences, whichever was measured), None if not measured.
    A text encoder's default speed is its bfloat16 one (measured with AVX512-BF16); ``float32`` asks for its
    float32 (ONNX Runtime) speed, the one a CPU without bf16 matrix units gets, where it was measured apart."""
    try:
        entry = json.loads(_MEASURED.read_text())[name]
        if float32 and FLOAT32_FIELD in entry:
            return float(entry[FLOAT32_FIELD])
        return next(float(entry[f]) for f in SPEED_FIELDS if f in entry)
    except (OSError, KeyError, ValueError, TypeError, StopIteration):
        return None
