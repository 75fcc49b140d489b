"""Helpers shared by the benchmark scripts: where the data is, how to print a table and save results."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERLAB_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
RESULTS = ROOT / "benchmarks" / "results"


def dataset(name: str) -> Path | None:
    path = SHARED / name
    if not path.exists():
        print(f"skipping {name}: {path} not found", file=sys.stderr)
        return None
    return path


def datasets_in(names: list[str], tmp: Path) -> Iterator[tuple[str, Path, Path]]:
    """(name, data folder, a fresh feature-cache folder under ``tmp``) for each shared set that exists."""
    for name in names:
        data = dataset(name)
        if data is not None:
            yield name, data, tmp / f"cache-{name}"


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns}
    print(" | ".join(c.ljust(widths[c]) for c in columns))
    print("-|-".join("-" * widths[c] for c in columns))
    for r in rows:
        print(" | ".join(fmt(r.get(c, "")).ljust(widths[c]) for c in columns))


def save_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "when": time.strftime("%Y-%m-%dT%H:%M:%S")}, **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {path}")
    return path


TRANSFERLAB = str(ROOT / ".venv" / "bin" / "transferlab")


def cli(args: list[str], cache: Path) -> tuple[dict[str, Any], float]:
    """Run ``transferlab ARGS --json`` with its own feature cache; (the JSON document, wall seconds)."""
    import subprocess

    env = {**os.environ, "TRANSFERLAB_CACHE": str(cache), "TRANSFERLAB_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    proc = subprocess.run([TRANSFERLAB, *args, "--json"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"transferlab {' '.join(args)} failed: {proc.stderr}")
    return json.loads(proc.stdout), wall


def cpu_kind() -> str:
    """:func:`transferlab._torch.cpu_description`: rows of different machines are kept apart by it."""
    from transferlab._torch import cpu_description

    return cpu_description()
