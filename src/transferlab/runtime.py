"""Process-wide settings that are not model parameters: where the cache lives and whether to show progress.

Strategies read these instead of taking them as parameters, so that cloning a strategy (``compare``) never copies a
machine-specific path into a saved model's config.

Prediction runs under :func:`read_only_cache`: every ``get_cache()`` inside it (the image feature extractor's, the
sentence encoders') hands out a read-only view of the same cache, so a served model reads earlier work but never
grows the file. The switch is a context variable: one thread predicting does not make another thread's training
read-only.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

from transferlab.cache import FeatureCache, default_cache_dir

_cache_dir: Path | None = None
_caches: dict[Path, FeatureCache] = {}
_read_only_caches: dict[Path, FeatureCache] = {}
_read_only: contextvars.ContextVar[bool] = contextvars.ContextVar("transferlab_read_only_cache", default=False)
_progress = True


def cache_dir() -> Path:
    return _cache_dir if _cache_dir is not None else default_cache_dir()


def get_cache() -> FeatureCache:
    """The shared feature cache of :func:`cache_dir`: writable, or read-only inside :func:`read_only_cache`."""
    d = cache_dir().resolve()
    if _read_only.get():
        if d not in _read_only_caches:
            _read_only_caches[d] = FeatureCache(d, read_only=True)
        return _read_only_caches[d]
    if d not in _caches:
        _caches[d] = FeatureCache(d)
    return _caches[d]


def cache_is_read_only() -> bool:
    return _read_only.get()


@contextlib.contextmanager
def read_only_cache(enabled: bool = True) -> Iterator[None]:
    """Inside the block (in this thread or task), :func:`get_cache` gives the read-only cache: cached vectors are
    used, new ones are computed and thrown away. ``enabled=False`` leaves the cache as it is (writable by default)."""
    token = _read_only.set(bool(enabled) or _read_only.get())
    try:
        yield
    finally:
        _read_only.reset(token)


def show_progress() -> bool:
    return _progress and os.environ.get("TRANSFERLAB_QUIET", "") not in ("1", "true", "yes")


def configure(cache_directory: str | os.PathLike[str] | None = None, progress: bool | None = None) -> None:
    global _cache_dir, _progress
    if cache_directory is not None:
        _cache_dir = Path(cache_directory)
    if progress is not None:
        _progress = progress


@contextlib.contextmanager
def settings(cache_directory: str | os.PathLike[str] | None = None, progress: bool | None = None) -> Iterator[None]:
    global _cache_dir, _progress
    saved = (_cache_dir, _progress)
    configure(cache_directory, progress)
    try:
        yield
    finally:
        _cache_dir, _progress = saved
