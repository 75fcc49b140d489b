"""Speeds measured by ``benchmarks/extraction_speed.py`` on the project's 2-core machines, shown by `models`."""

from __future__ import annotations

import json
from pathlib import Path

_MEASURED = Path(__file__).parent / "resources" / "backbone_speed.json"


def measured_speed(name: str) -> float | None:
    try:
        return float(json.loads(_MEASURED.read_text())[name]["images_per_second"])
    except (OSError, KeyError, ValueError, TypeError):
        return None
