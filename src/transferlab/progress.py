"""Progress bars on stderr (stdout stays clean for ``--json``). Quiet when ``TRANSFERLAB_QUIET=1``."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_enabled() -> bool:
    return os.environ.get("TRANSFERLAB_QUIET", "") not in ("1", "true", "yes")


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True,
                 **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not (enabled and progress_enabled()), mininterval=0.5, **kwargs)


def log(message: str) -> None:
    """A line for people, on stderr (above any progress bar being drawn, not through it)."""
    if progress_enabled():
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)
