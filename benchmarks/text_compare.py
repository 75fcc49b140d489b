"""compare, rank and --strategy auto on the shared text sets (issue 5: text gets the same verbs as images).

For each set: `transferlab compare` with its fast default set (cold cache, then again to show the run cache),
`transferlab rank` (MiniLM against mean-pooled GloVe: LogME order against the two text_headless rows' measured
accuracy), and `transferlab train --strategy auto` (its choice, the reason, its accuracy and the gap to the best row
of the leaderboard). Metric: accuracy, and macro-F1 for sms_spam. sst2 is evaluated on its test split.

    .venv/bin/python benchmarks/text_compare.py [--datasets sst2,ag_news,newsgroups20,sms_spam]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, datasets_in, print_table, save_results  # noqa: E402

SETS = ["sms_spam", "newsgroups20", "ag_news", "sst2"]
EVAL_SPLIT = {"sst2": "test"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(SETS))
    names = ap.parse_args().datasets.split(",")
    rows, rank_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, data, cache in datasets_in(names, tmp):
            split = ["--eval-split", EVAL_SPLIT[name]] if name in EVAL_SPLIT else []
            metric = "macro_f1" if name == "sms_spam" else "accuracy_mean"
            doc, cold = cli(["compare", str(data), "--out", str(tmp / f"cmp-{name}"), "--seeds", "1", *split], cache)
            _, warm = cli(["compare", str(data), "--out", str(tmp / f"cmp-{name}"), "--seeds", "1", *split], cache)
            board = doc["leaderboard"]
            best = max(board, key=lambda r: r[metric])
            print(f"{name}: compare {cold:.0f} s cold, {warm:.1f} s again", flush=True)
            for r in board:
                print(f"   {r['strategy']:<15}{r['backbone']:<15} acc {r['accuracy_mean']:.4f} "
                      f"macro-F1 {r['macro_f1']:.4f} train {r['train_seconds']:.1f} s "
                      f"{r['latency_ms_p50']:.1f} ms/text {r['size_mb']:.1f} MB", flush=True)
            ranking, rank_wall = cli(["rank", str(data), *split], cache)
            headless = {("glove" if r["params"].get("encoder") == "glove" else "minilm"): r["accuracy_mean"]
                        for r in board if r["strategy"] == "text_headless"}
            order = [r["backbone"] for r in ranking["ranking"]]
            rank_rows.append({"dataset": name, "rank_wall_s": rank_wall,
                              "logme": " > ".join(f"{r['backbone']} {r['logme']:.3f}" for r in ranking["ranking"]),
                              "headless_acc": " ".join(f"{k}={v:.3f}" for k, v in headless.items()),
                              "order_agrees": order[0] == max(headless, key=headless.get)})
            auto, auto_wall = cli(["train", str(data), "--strategy", "auto", "--out", str(tmp / f"auto-{name}"),
                                   *split], cache)
            auto_value = auto["macro_f1" if metric == "macro_f1" else "accuracy"]
            gap = best[metric] - auto_value
            rows.append({"dataset": name, "metric": metric.replace("_mean", ""), "compare_s": cold,
                         "compare_again_s": warm, "best": best["label"] + "/" + best["backbone"],
                         "best_value": best[metric], "auto": auto["auto"]["strategy"],
                         "auto_params": str(auto["auto"]["params"]), "auto_value": auto_value,
                         "auto_wall_s": auto_wall, "gap_points": 100 * gap, "reason": auto["auto"]["reason"],
                         "leaderboard": board})
            print(f"{name}: auto chose {auto['auto']['strategy']} {auto['auto']['params']}: {auto_value:.4f} "
                  f"(best of compare {best[metric]:.4f}) in {auto_wall:.0f} s", flush=True)
    print("\ncompare (fast default set) and --strategy auto:")
    print_table(rows, ["dataset", "metric", "compare_s", "compare_again_s", "best", "best_value", "auto",
                       "auto_params", "auto_value", "auto_wall_s", "gap_points"])
    print("\nrank (LogME of the frozen encoders) against text_headless accuracy:")
    print_table(rank_rows, ["dataset", "rank_wall_s", "logme", "headless_acc", "order_agrees"])
    suffix = "" if names == SETS else "_" + "_".join(names)
    save_results("text_compare" + suffix, {"sets": rows, "rank": rank_rows})


if __name__ == "__main__":
    main()
