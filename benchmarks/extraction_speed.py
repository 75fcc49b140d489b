"""Frozen feature extraction speed per backbone: ONNX Runtime on preprocessed batches (batch 32, best of 3), and the
same network in PyTorch eager for comparison. Target: Lite0 at 224 px >= 120 images/s on 2 cores.

    .venv/bin/python benchmarks/extraction_speed.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, print_table, save_results  # noqa: E402
from transferlab.backbones import list_backbones  # noqa: E402
from transferlab.cache import FeatureCache  # noqa: E402
from transferlab.features.images import FeatureExtractor  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    rows = []
    batch_size = 32
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        for spec in list_backbones("image"):
            size = spec.preprocessing.size
            batch = np.random.default_rng(0).normal(size=(batch_size, 3, size, size)).astype(np.float32)
            row = {"backbone": spec.name, "input_px": size}
            for engine in ("onnx", "torch"):
                ex = FeatureExtractor(spec, cache=cache, engine=engine, progress=False)
                ex.run_arrays(batch)  # warm-up (and export)
                row[f"{engine}_img_per_s"] = batch_size / best_of(lambda ex=ex, b=batch: ex.run_arrays(b))
            rows.append(row)
    print_table(rows, ["backbone", "input_px", "onnx_img_per_s", "torch_img_per_s"])
    lite0 = next(r for r in rows if r["backbone"] == "efficientnet_lite0")["onnx_img_per_s"]
    print(f"\nLite0 224 px, ONNX Runtime, batch 32, best of 3: {lite0:.1f} img/s (target >= 120)")
    save_results("extraction_speed", {"batch_size": batch_size, "rows": rows, "target_lite0_img_per_s": 120,
                                      "lite0_img_per_s": lite0, "meets_target": lite0 >= 120})
    speed_file = ROOT / "src" / "transferlab" / "resources" / "backbone_speed.json"
    speeds = json.loads(speed_file.read_text()) if speed_file.exists() else {}  # keeps the text encoders' speeds
    speeds.update({r["backbone"]: {"images_per_second": round(r["onnx_img_per_s"], 1)} for r in rows})
    speed_file.write_text(json.dumps(speeds, indent=2))


if __name__ == "__main__":
    main()
