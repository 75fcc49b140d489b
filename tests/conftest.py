from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFERLAB_QUIET", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERLAB_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared dataset {name!r} not found at {path} (set TRANSFERLAB_SHARED_DATASETS)")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the whole session (and the test process), so each image is embedded once."""
    from transferlab import runtime

    d = tmp_path_factory.mktemp("cache")
    os.environ["TRANSFERLAB_CACHE"] = str(d)
    runtime.configure(cache_directory=d)
    return d


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.examples import write_digits

    return write_digits(tmp_path_factory.mktemp("digits") / "digits", per_class=12)
