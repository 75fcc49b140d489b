"""Issue 13, acceptance 2: `transferlab train --strategy auto` on ag_news, newsgroups20 and sst2 (full train split),
with default parameters, against the targets (ag_news >= 0.92, newsgroups20 >= 0.80, sst2 >= 0.90 within 30 min).

Each run: a fresh feature cache, `train DATA --strategy auto --json` (sst2 evaluated on its test split), wall time
of the whole command (data report, auto's measurements, training and evaluation). The printed table says what auto
chose (strategy, body, parameters), the accuracy and the minutes; the results go to
benchmarks/results/text_auto.json, merged with earlier runs by data set and kind of CPU (one row per data set with
bf16 matrix units and one without: what auto fine-tunes depends on them).

    .venv/bin/python benchmarks/text_auto.py [--datasets sst2,ag_news,newsgroups20] [--warm-cache]

``--warm-cache`` uses the user's feature cache (``TRANSFERLAB_CACHE`` or its default) instead of a fresh one: the
accuracy is the same, the minutes are then not a cold run's (the row says which).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, cli, cpu_kind, datasets_in, print_table, save_results  # noqa: E402

TARGETS = {"ag_news": 0.92, "newsgroups20": 0.80, "sst2": 0.90}
MAX_MINUTES = {"sst2": 30.0}
EVAL_SPLIT = {"sst2": "test"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="sst2,ag_news,newsgroups20")
    ap.add_argument("--warm-cache", action="store_true", help="the user's feature cache, not a fresh one")
    args = ap.parse_args()
    names = args.datasets.split(",")
    old_path = RESULTS / "text_auto.json"
    rows = {(r["dataset"], r["cpu_bf16_units"], r.get("cpu", "")): r
            for r in json.loads(old_path.read_text()).get("rows", [])} if old_path.exists() else {}
    from transferlab._torch import native_bf16

    amx = native_bf16()  # what auto's body rule reads (TRANSFERLAB_BF16, else the CPU's AMX or AVX512-BF16 units)
    cpu = cpu_kind()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, data, cache in datasets_in(names, tmp):
            split = ["--eval-split", EVAL_SPLIT[name]] if name in EVAL_SPLIT else []
            if args.warm_cache:
                from transferlab.cache import default_cache_dir

                cache = default_cache_dir()
            doc, wall = cli(["train", str(data), "--strategy", "auto", "--out", str(tmp / f"auto-{name}"), *split],
                            cache)
            auto = doc["auto"]
            minutes = wall / 60
            met = doc["accuracy"] >= TARGETS[name] and minutes <= MAX_MINUTES.get(name, float("inf"))
            rows[name, amx, cpu] = {"dataset": name, "count": doc["count"],
                          "auto": auto["strategy"], "body": auto.get("backbone"), "params": auto["params"],
                          "accuracy": doc["accuracy"], "macro_f1": doc.get("macro_f1"), "minutes": round(minutes, 1),
                          "target": TARGETS[name], "max_minutes": MAX_MINUTES.get(name), "met": met,
                          "cpu_bf16_units": amx, "cpu": cpu, "cache": "warm" if args.warm_cache else "cold",
                          "reason": auto["reason"]}
            print(f"{name}: {auto['strategy']} {auto['params']} accuracy {doc['accuracy']:.4f} in {minutes:.1f} min"
                  f" ({'met' if met else 'NOT met'})", flush=True)
    table = list(rows.values())
    print_table(table, ["dataset", "auto", "body", "accuracy", "target", "minutes", "met", "cpu_bf16_units"])
    print("results:", save_results("text_auto", {"rows": table}))


if __name__ == "__main__":
    main()
