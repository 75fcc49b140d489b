"""Issue 4's acceptance figures, on the shared image sets:

1. `transferlab compare hymenoptera` with defaults: wall time with an empty cache (target <= 180 s) and again on the
   same data (target >= 5x faster).
3. `rank`: Spearman correlation between the rank scores and the measured headless accuracy of the four backbones
   (the compare leaderboard's headless rows); target >= 0.6 on at least three of the four sets.
4. `train --strategy auto`: accuracy within 1 point of the best strategy in the same set's compare leaderboard.

    .venv/bin/python benchmarks/compare_bench.py [--datasets hymenoptera,cats_vs_dogs,...]

``--resplits N`` measures instead why ``--strategy auto`` uses ``headless_ensemble`` for small data: each set's
train and val images are pooled and re-split N times (stratified, val-sized test part); on every split, headless
on the backbone LogME ranks first (on that split's training part), the ensemble of the two it ranks first, and
the best single backbone of that split in hindsight (an oracle no rule can match) are scored on the test part.
Writes ``results/compare_resplits.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, dataset, datasets_in, print_table, save_results  # noqa: E402

SETS = ["hymenoptera", "cats_vs_dogs", "chest_xray_224", "dtd_subset"]


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def resplits(names: list[str], n: int) -> None:
    import numpy as np
    from sklearn.model_selection import StratifiedShuffleSplit

    from transferlab.data.images import ImageDataset, resolve_image_data
    from transferlab.strategies import make_strategy
    from transferlab.workflows.rank import rank_backbones

    rows = []
    for name in names:
        data = dataset(name)
        if data is None:
            continue
        train, ev, _ = resolve_image_data(data)
        pooled = ImageDataset(train.paths + ev.paths, (train.labels or []) + (ev.labels or []), list(train.classes))
        acc: dict[str, list[float]] = {"top1": [], "ensemble": [], "oracle": []}
        splitter = StratifiedShuffleSplit(n, test_size=len(ev), random_state=0)
        for tr_idx, te_idx in splitter.split(np.zeros(len(pooled)), pooled.y):
            tr, te = pooled.subset(list(tr_idx)), pooled.subset(list(te_idx))
            order = [r["backbone"] for r in rank_backbones(tr)]
            proba = {b: make_strategy("headless", backbone=b).fit(tr).predict_proba(te) for b in order}
            score = {b: float((p.argmax(1) == te.y).mean()) for b, p in proba.items()}
            acc["top1"].append(score[order[0]])
            acc["ensemble"].append(float(((proba[order[0]] + proba[order[1]]).argmax(1) == te.y).mean()))
            acc["oracle"].append(max(score.values()))
        diff = np.array(acc["ensemble"]) - np.array(acc["top1"])
        rows.append({"dataset": name, "splits": n, "n_test": len(ev), **{k: float(np.mean(v)) for k, v in acc.items()},
                     "gain_points": 100 * float(diff.mean()), "wins": int((diff > 0).sum()),
                     "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum())})
    print(f"headless on LogME's first backbone vs the ensemble of its first two ({n} re-splits, mean accuracy):")
    print_table(rows, ["dataset", "splits", "n_test", "top1", "ensemble", "oracle", "gain_points", "wins", "ties",
                       "losses"])
    save_results("compare_resplits", {"rows": rows})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(SETS))
    ap.add_argument("--resplits", type=int, default=0, metavar="N")
    args = ap.parse_args()
    names = args.datasets.split(",")
    if args.resplits:
        resplits(names, args.resplits)
        return
    rows, rank_rows = [], []
    timing = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, data, cache in datasets_in(names, tmp):
            doc, cold = cli(["compare", str(data), "--out", str(tmp / f"cmp-{name}")], cache)
            if name == "hymenoptera":
                _, warm = cli(["compare", str(data), "--out", str(tmp / f"cmp-{name}")], cache)
                timing = {"cold_s": cold, "warm_s": warm, "speedup": cold / warm}
            board = doc["leaderboard"]
            best = board[0]
            headless = {r["backbone"]: r["accuracy_mean"] for r in board
                        if r["strategy"] == "headless" and r["layer"] == "top"}
            ranking, rank_wall = cli(["rank", str(data)], cache)
            scores = {r["backbone"]: r for r in ranking["ranking"]}
            order = sorted(headless)
            acc = [headless[b] for b in order]
            rho = {s: spearman(acc, [scores[b][s] for b in order]) for s in ("logme", "h_score", "knn_loo")}
            rank_rows.append({"dataset": name, **{f"rho_{k}": v for k, v in rho.items()},
                              "rank_wall_s": rank_wall,
                              "headless_acc": " ".join(f"{b.replace('efficientnet_', '')}={headless[b]:.3f}"
                                                       for b in order),
                              "logme_order": " > ".join(r["backbone"].replace("efficientnet_", "")
                                                        for r in ranking["ranking"])})
            auto, auto_wall = cli(["train", str(data), "--strategy", "auto", "--out", str(tmp / f"auto-{name}")],
                                  cache)
            gap = best["accuracy_mean"] - auto["accuracy"]
            rows.append({"dataset": name, "compare_s": cold, "best": f"{best['strategy']}/{best['backbone']}"
                         + ("/mid" if best.get("layer") == "mid" else ""),
                         "best_acc": best["accuracy_mean"],
                         "auto": f"{auto['auto']['strategy']}/{auto['auto']['backbone']}/{auto['auto']['params']}",
                         "auto_acc": auto["accuracy"], "gap_points": 100 * gap, "within_1pt": gap <= 0.01 + 1e-9,
                         "advice": doc["advice"]["reason"][:60] + "..."})
    print("compare (defaults) and --strategy auto:")
    print_table(rows, ["dataset", "compare_s", "best", "best_acc", "auto", "auto_acc", "gap_points", "within_1pt"])
    print("\nrank: Spearman correlation of scores with measured headless accuracy (4 backbones):")
    print_table(rank_rows, ["dataset", "rho_logme", "rho_h_score", "rho_knn_loo", "rank_wall_s", "headless_acc",
                            "logme_order"])
    if timing:
        print(f"\nhymenoptera compare: {timing['cold_s']:.1f} s cold (target <= 180), {timing['warm_s']:.1f} s again "
              f"({timing['speedup']:.1f}x faster, target >= 5x)")
    ok_rank = sum(r["rho_logme"] >= 0.6 for r in rank_rows)
    print(f"rank: LogME Spearman >= 0.6 on {ok_rank} of {len(rank_rows)} sets (target: at least 3 of 4)")
    suffix = "" if names == SETS else "_" + "_".join(names)
    save_results("compare" + suffix, {"auto": rows, "rank": rank_rows, "hymenoptera_compare_wall": timing,
                             "rank_sets_ok": ok_rank})


if __name__ == "__main__":
    main()
