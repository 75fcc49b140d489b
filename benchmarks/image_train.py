"""Issue 2's acceptance figures: default `transferlab train` accuracy on the shared image sets, and the wall time
of the hymenoptera command with an empty and with a warm cache (model load included: a fresh process each time).

    .venv/bin/python benchmarks/image_train.py            # everything
    .venv/bin/python benchmarks/image_train.py --quick    # hymenoptera only
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, dataset, print_table, save_results  # noqa: E402

TRANSFERLAB = [str(ROOT / ".venv" / "bin" / "transferlab")]
CASES = [  # dataset, extra args, target accuracy
    ("hymenoptera", [], 0.95),
    ("cats_vs_dogs", [], 0.98),
    ("chest_xray_224", [], 0.92),
    ("dtd_subset", ["--backbone", "efficientnet_lite2"], 0.80),
]


def run_train(data: Path, out: Path, cache: Path, extra: list[str]) -> tuple[dict, float]:
    env = {**os.environ, "TRANSFERLAB_CACHE": str(cache), "TRANSFERLAB_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    proc = subprocess.run([*TRANSFERLAB, "train", str(data), "--out", str(out), "--json", *extra],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"train failed on {data}: {proc.stderr}")
    return json.loads(proc.stdout), wall


def main() -> None:
    quick = "--quick" in sys.argv
    rows, timing = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, extra, target in CASES[:1] if quick else CASES:
            data = dataset(name)
            if data is None:
                continue
            cache = tmp / f"cache-{name}"
            metrics, cold = run_train(data, tmp / f"model-{name}", cache, extra)
            metrics_warm, warm = run_train(data, tmp / f"model-{name}", cache, extra)
            assert abs(metrics_warm["accuracy"] - metrics["accuracy"]) < 1e-9  # same seed, same numbers
            rows.append({"dataset": name, "backbone": extra[1] if extra else "efficientnet_lite0",
                         "accuracy": metrics["accuracy"], "target": target,
                         "ok": "yes" if metrics["accuracy"] >= target else "NO",
                         "macro_f1": metrics["macro_f1"], "wall_cold_s": cold, "wall_warm_s": warm})
            if name == "hymenoptera":
                timing = {"cold_s": cold, "warm_s": warm, "target_cold_s": 15, "target_warm_s": 5}
    print_table(rows, ["dataset", "backbone", "accuracy", "target", "ok", "macro_f1", "wall_cold_s", "wall_warm_s"])
    if timing:
        print(f"\nhymenoptera wall time: {timing['cold_s']:.1f} s with an empty cache (target <= 15), "
              f"{timing['warm_s']:.1f} s warm (target <= 5)")
    save_results("image_train" + ("_quick" if quick else ""), {"rows": rows, "hymenoptera_wall": timing})


if __name__ == "__main__":
    main()
