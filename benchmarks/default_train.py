"""What a user gets from `transferlab train DATA` with no --strategy (the fast auto), against `headless` /
`text_headless` (wall time, each from a cold feature cache, as separate processes) and against the best row of
`compare` (images, from benchmarks/results/compare.json) or `--strategy auto` (text, run here with --with-auto).

    .venv/bin/python benchmarks/default_train.py [--sets hymenoptera cats_vs_dogs ...] [--with-auto]

Acceptance (issue 13): accuracy within 1 point of the best compare row (images) / of --strategy auto (text), at
<= 3x the wall time of headless / text_headless on the same data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, cli, dataset, print_table, save_results  # noqa: E402

IMAGE_SETS = ["hymenoptera", "cats_vs_dogs", "chest_xray_224", "dtd_subset"]
TEXT_SETS = ["sms_spam", "newsgroups20", "ag_news", "sst2"]


def best_compare_rows() -> dict[str, tuple[str, float]]:
    """dataset -> (label, accuracy) of the best `compare` row, as benchmarks/compare_bench.py recorded it."""
    path = RESULTS / "compare.json"
    if not path.exists():
        return {}
    return {r["dataset"]: (r["best"], float(r["best_acc"])) for r in json.loads(path.read_text()).get("auto", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=IMAGE_SETS + TEXT_SETS)
    parser.add_argument("--with-auto", action="store_true", help="text: also run --strategy auto (may fine-tune)")
    args = parser.parse_args()
    best = best_compare_rows()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            data = dataset(name)
            if data is None:
                continue
            text = name in TEXT_SETS
            doc, wall = cli(["train", str(data)], Path(tmp) / f"default-{name}")
            base, base_wall = cli(["train", str(data), "--strategy", "text_headless" if text else "headless"],
                                  Path(tmp) / f"headless-{name}")
            row = {"dataset": name, "default_choice": doc["auto"]["strategy"] + (
                f"[{doc['auto']['params'].get('encoder')}]" if doc["auto"]["params"].get("encoder") else ""),
                "default_acc": doc["accuracy"], "default_wall_s": round(wall, 1), "headless_acc": base["accuracy"],
                "headless_wall_s": round(base_wall, 1), "time_ratio": round(wall / base_wall, 2),
                "reason": doc["auto"]["reason"]}
            if text and args.with_auto:
                auto, auto_wall = cli(["train", str(data), "--strategy", "auto"], Path(tmp) / f"auto-{name}")
                row.update(reference=f"auto: {auto['auto']['strategy']}", reference_acc=auto["accuracy"],
                           auto_wall_s=round(auto_wall, 1))
            elif not text and name in best:
                row.update(reference=f"compare best: {best[name][0]}", reference_acc=best[name][1])
            if "reference_acc" in row:
                row["gap_points"] = round(100 * (row["reference_acc"] - row["default_acc"]), 2)
                row["pass"] = row["gap_points"] <= 1.0 and row["time_ratio"] <= 3.0
            rows.append(row)
            print(f"{name}: default {row['default_choice']} {row['default_acc']:.4f} in {wall:.0f} s "
                  f"(headless {base['accuracy']:.4f} in {base_wall:.0f} s)", file=sys.stderr, flush=True)
    print_table(rows, ["dataset", "default_choice", "default_acc", "default_wall_s", "headless_acc",
                       "headless_wall_s", "time_ratio", "reference", "reference_acc", "gap_points", "pass"])
    save_results("default_train", {"rows": rows})


if __name__ == "__main__":
    main()
