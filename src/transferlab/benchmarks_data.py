"""Backbone speeds, shown by `models`: images per second of the image backbones (``benchmarks/extraction_speed.py``)
and sentences per second of the text encoders (``benchmarks/text_encoder_speed.py``), measured on the project's
2-core machines, in ``resources/backbone_speed.json``; and speeds measured on the user's own machine by
``transferlab models --measure``, kept in the feature cache folder (``speed_here.json``) for that CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

_MEASURED = Path(__file__).parent / "resources" / "backbone_speed.json"
SPEED_FIELDS = ("images_per_second", "sentences_per_second")
FLOAT32_FIELD = "float32_sentences_per_second"
HERE_FILE = "speed_here.json"


def _project_entry(name: str) -> dict:
    """``name``'s entry in the project's speed file ({} when it has none)."""
    try:
        entry = json.loads(_MEASURED.read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return {}
    return entry if isinstance(entry, dict) else {}


def _speed_in(entry: dict, float32: bool) -> float | None:
    try:
        if float32 and FLOAT32_FIELD in entry:
            return float(entry[FLOAT32_FIELD])
        return next(float(entry[f]) for f in SPEED_FIELDS if f in entry)
    except (ValueError, TypeError, StopIteration):
        return None


def measured_speed(name: str, float32: bool = False) -> float | None:
    """Items per second of backbone ``name`` (images or sentences, whichever was measured), None if not measured.
    A text encoder's default speed is its bfloat16 one (measured with AVX512-BF16); ``float32`` asks for its
    float32 (ONNX Runtime) speed, the one a CPU without bf16 matrix units gets, where it was measured apart."""
    return _speed_in(_project_entry(name), float32)


def _here_path() -> Path:
    from transferlab import runtime

    return runtime.cache_dir() / HERE_FILE


def speeds_measured_here() -> dict[str, float]:
    """Items per second that ``models --measure`` recorded on this CPU (none when it never ran here, or ran on
    another CPU with the same cache folder)."""
    from transferlab._torch import cpu_description

    try:
        doc = json.loads(_here_path().read_text())
        if doc.get("cpu") != cpu_description():
            return {}
        return {str(k): float(v) for k, v in doc["items_per_second"].items() if float(v) > 0}
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return {}


def record_speeds_here(speeds: dict[str, float]) -> Path:
    """Add ``speeds`` (backbone -> items per second, measured now) to this CPU's record; returns its path."""
    from transferlab._torch import cpu_description

    path = _here_path()
    doc = {"cpu": cpu_description(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "items_per_second": {**speeds_measured_here(), **{k: round(v, 1) for k, v in speeds.items()}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return path


def speed_on_this_machine(name: str) -> tuple[float | None, str]:
    """Items per second of ``name`` for this machine and where the figure comes from: ``"measured here"`` (by
    ``models --measure`` on this CPU), else the project's measurement of the path this CPU takes (``"project,
    bf16"`` on a CPU with bf16 matrix units, ``"project, float32"`` for a text encoder elsewhere, ``"project"`` for
    the rest), or (None, ``"not measured"``)."""
    here = speeds_measured_here().get(name)
    if here is not None:
        return here, "measured here"
    from transferlab._torch import native_bf16

    float32 = not native_bf16()
    entry = _project_entry(name)
    speed = _speed_in(entry, float32)
    if speed is None:
        return None, "not measured"
    if FLOAT32_FIELD in entry:
        return speed, "project, float32" if float32 else "project, bf16"
    return speed, "project"
