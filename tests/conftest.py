from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFERLAB_QUIET", "1")
# float32 answers everywhere, so exactness checks (export vs reader) hold on CPUs with bf16 units too; the bf16 path
# has its own test (tests/test_qa.py), which sets this itself
os.environ.setdefault("TRANSFERLAB_BF16", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERLAB_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


def run_runtime_only(export_dir: Path, body: str, cwd: Path) -> Any:  # noqa: ANN401
    """Run ``body`` in a fresh Python where torch, scikit-learn, transformers, scipy, safetensors and transferlab
    cannot be imported, with ``load`` imported from the copy of ``transferlab_runtime`` in ``export_dir``; check that
    none of those modules was loaded, and return what ``body`` printed last, as JSON."""
    script = textwrap.dedent("""
        import json, sys
        BLOCKED = ("torch", "sklearn", "transformers", "transferlab", "scipy", "safetensors")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked in this test: " + name)
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, EXPORT_DIR)
        from transferlab_runtime import load
    """).replace("EXPORT_DIR", repr(str(export_dir))) + textwrap.dedent(body) + textwrap.dedent("""
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), sorted(sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
