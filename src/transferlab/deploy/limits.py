"""What one request to ``transferlab serve`` may carry: a standard-library module, so that building the command line
parser costs no FastAPI import."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
"""The only image formats decoded: Pillow opens uploads with these plugins alone."""

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class Limits:
    """Each limit is a ``transferlab serve`` option; :mod:`transferlab.deploy.server` says which status exceeding
    it gets."""

    max_body_bytes: int = 16 * 1024 * 1024
    max_files: int = 16
    max_pixels: int = 40_000_000  # per image, from its header (decompression bombs)
    max_texts: int = 64
    max_text_chars: int = 10_000
    max_pending: int = 64  # /predict requests in progress at once; more: 429
    read_timeout_s: float = 30.0  # the whole body must arrive within this
    image_formats: tuple[str, ...] = IMAGE_FORMATS
