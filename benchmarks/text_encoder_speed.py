"""Text encoder speed: sentences per second of every registered text encoder, embedding sst2 test sentences with a
cold feature cache (nothing embedded before), the model already loaded; best of 3, each run in a fresh cache folder.
The load time of the model is reported apart. The speeds land beside the image backbones' in
``src/transferlab/resources/backbone_speed.json``, which ``transferlab models`` shows.

    .venv/bin/python benchmarks/text_encoder_speed.py [--sentences 500]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, dataset, print_table, save_results  # noqa: E402
from transferlab import runtime  # noqa: E402
from transferlab._torch import set_torch_threads  # noqa: E402
from transferlab.backbones import list_backbones  # noqa: E402
from transferlab.features import extract_features  # noqa: E402

SPEED_FILE = ROOT / "src" / "transferlab" / "resources" / "backbone_speed.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = dataset("sst2")
    if data is None:
        return
    with open(data / "test.csv", encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)][: args.sentences]
    set_torch_threads()
    rows = []
    for spec in list_backbones("text"):
        with tempfile.TemporaryDirectory() as tmp, runtime.settings(cache_directory=Path(tmp) / "warm", progress=False):
            t = time.perf_counter()
            extract_features(spec.name, ["warm-up: the model loads here", "and a second sentence"])
            load_s = time.perf_counter() - t
        times = []
        for i in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp, runtime.settings(cache_directory=Path(tmp) / f"cold{i}",
                                                                        progress=False):
                t = time.perf_counter()
                out = extract_features(spec.name, texts)
                times.append(time.perf_counter() - t)
                assert out.arrays["features"].shape == (len(texts), spec.feature_dim)
        rows.append({"encoder": spec.name, "sentences": len(texts), "load_seconds": load_s,
                     "best_seconds": min(times), "sentences_per_second": len(texts) / min(times)})
    print_table(rows, ["encoder", "sentences", "load_seconds", "best_seconds", "sentences_per_second"])
    save_results("text_encoder_speed", {"sentences": len(texts), "repeats": args.repeats, "rows": rows})
    speeds = json.loads(SPEED_FILE.read_text()) if SPEED_FILE.exists() else {}
    for r in rows:
        speeds[r["encoder"]] = {"sentences_per_second": round(r["sentences_per_second"], 1)}
    SPEED_FILE.write_text(json.dumps(speeds, indent=2) + "\n")


if __name__ == "__main__":
    main()
