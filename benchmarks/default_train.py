"""What a user gets from `transferlab train DATA` with no --strategy (the fast auto), against `headless` /
`text_headless` (wall time, each from a cold feature cache, as separate processes) and against the best row of
`compare` (images, from benchmarks/results/compare.json) or `--strategy auto` (text: run here with --with-auto, else
the row of benchmarks/results/text_auto.json for this kind of CPU, with or without bf16 matrix units, as
benchmarks/text_auto.py recorded it). Text sets are evaluated on the split text_auto.py uses (sst2: test).

    .venv/bin/python benchmarks/default_train.py [--sets hymenoptera cats_vs_dogs ...] [--with-auto]

Each run gets a fresh feature cache. The backbones' exported ONNX graphs (a one-time cost per machine: a few seconds
per backbone, paid by the first run that uses it) are exported first and copied into each run's cache, unless
``--cold-graphs`` (then every run also exports the graphs it uses; figures in results/default_train_cold_graphs.json).

Acceptance (issue 13): accuracy within 1 point of the best compare row (images) / of --strategy auto (text), at
<= 3x the wall time of headless / text_headless on the same data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, cli, cpu_kind, dataset, print_table, save_results  # noqa: E402
from text_auto import EVAL_SPLIT  # noqa: E402

IMAGE_SETS = ["hymenoptera", "cats_vs_dogs", "chest_xray_224", "dtd_subset"]
TEXT_SETS = ["sms_spam", "newsgroups20", "ag_news", "sst2"]


def best_compare_rows() -> dict[str, tuple[str, float]]:
    """dataset -> (label, accuracy) of the best `compare` row, as benchmarks/compare_bench.py recorded it."""
    path = RESULTS / "compare.json"
    if not path.exists():
        return {}
    return {r["dataset"]: (r["best"], float(r["best_acc"])) for r in json.loads(path.read_text()).get("auto", [])}


def recorded_auto_rows() -> dict[str, dict]:
    """dataset -> the `--strategy auto` row of results/text_auto.json for this kind of CPU (what auto fine-tunes
    depends on its bf16 units): this CPU's own row where there is one, else one of a CPU with the same answer from
    native_bf16."""
    path = RESULTS / "text_auto.json"
    if not path.exists():
        return {}
    from transferlab._torch import native_bf16

    units, cpu = native_bf16(), cpu_kind()
    rows = [r for r in json.loads(path.read_text())["rows"] if r.get("cpu_bf16_units") == units]
    return {r["dataset"]: r for r in sorted(rows, key=lambda r: r.get("cpu") == cpu)}  # this CPU's rows last: kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=IMAGE_SETS + TEXT_SETS)
    parser.add_argument("--with-auto", action="store_true", help="text: also run --strategy auto (may fine-tune)")
    parser.add_argument("--cold-graphs", action="store_true", help="do not pre-export the ONNX graphs")
    args = parser.parse_args()
    best = best_compare_rows()
    recorded = recorded_auto_rows()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = Path(tmp) / "graphs"

        def fresh_cache(label: str) -> Path:
            cache = Path(tmp) / label
            if not args.cold_graphs and (graphs / "onnx").is_dir():
                shutil.copytree(graphs / "onnx", cache / "onnx")
            return cache

        if not args.cold_graphs:
            from transferlab import runtime
            from transferlab.backbones import list_backbones
            from transferlab.features import extract_features

            with runtime.settings(cache_directory=graphs, progress=False):
                from PIL import Image

                probe = graphs / "probe.png"
                probe.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (32, 32), (120, 90, 60)).save(probe)
                for spec in list_backbones("image"):
                    extract_features(spec.name, [str(probe)])  # exports the graph
                extract_features("minilm", ["warm-up"])
        for name in args.sets:
            data = dataset(name)
            if data is None:
                continue
            text = name in TEXT_SETS
            split = ["--eval-split", EVAL_SPLIT[name]] if name in EVAL_SPLIT else []
            doc, wall = cli(["train", str(data), *split], fresh_cache(f"default-{name}"))
            base, base_wall = cli(["train", str(data), "--strategy", "text_headless" if text else "headless", *split],
                                  fresh_cache(f"headless-{name}"))
            row = {"dataset": name, "default_choice": doc["auto"]["strategy"] + (
                f"[{doc['auto']['params'].get('encoder')}]" if doc["auto"]["params"].get("encoder") else ""),
                "default_acc": doc["accuracy"], "default_wall_s": round(wall, 1), "headless_acc": base["accuracy"],
                "headless_wall_s": round(base_wall, 1), "time_ratio": round(wall / base_wall, 2),
                "reason": doc["auto"]["reason"]}
            if text and args.with_auto:
                auto, auto_wall = cli(["train", str(data), "--strategy", "auto", *split], fresh_cache(f"auto-{name}"))
                row.update(reference=f"auto: {auto['auto']['strategy']}", reference_acc=auto["accuracy"],
                           auto_wall_s=round(auto_wall, 1))
            elif text and name in recorded:
                r = recorded[name]
                row.update(reference=f"auto (text_auto.json): {r['auto']}[{r['body']}]",
                           reference_acc=r["accuracy"], auto_wall_s=round(60 * r["minutes"], 1))
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
    name = "default_train_cold_graphs" if args.cold_graphs else "default_train"
    earlier = RESULTS / f"{name}.json"  # rows of sets not run this time are kept
    done = {r["dataset"] for r in rows}
    kept = [r for r in json.loads(earlier.read_text())["rows"] if r["dataset"] not in done] if earlier.exists() else []
    save_results(name, {"graphs_pre_exported": not args.cold_graphs, "rows": kept + rows})


if __name__ == "__main__":
    main()
