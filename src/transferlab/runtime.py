"""Process-wide settings that are not model parameters: where the cache lives and whether to show progress.

Strategies read these instead of taking them as parameters, so that cloning a strategy (``compare``) never copies a
machine-specific path into a saved model's config.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from transferlab.cache import FeatureCache, default_cache_dir

_cache_dir: Path | None = None
_caches: dict[Path, FeatureCache] = {}
_progress = True


def cache_dir() -> Path:
    return _cache_dir if _cache_dir is not None else default_cache_dir()


def get_cache() -> FeatureCache:
    d = cache_dir().resolve()
    if d not in _caches:
        _caches[d] = FeatureCache(d)
    return _caches[d]


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
