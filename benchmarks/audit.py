"""Issue 16's label-audit acceptance figures: labels flipped at random on purpose, then `transferlab audit` run as a
user would (defaults, a fresh feature cache), and the top of its ranking compared with what was flipped.

1. cats_vs_dogs: 10% of the training labels flipped (each image moved into the other class's folder of a symlinked
   copy in a temp dir; the val/ images keep their labels), the whole set audited; target: the first k ranked items
   (k = how many were flipped) recover >= 80% of the flips at >= 80% precision (with k = flips, the two are equal).
2. sst2: a sample of 2,000 training texts, 10% of their labels flipped (a CSV in a temp dir); target >= 70% / 70%.

Seed 0 is the acceptance run; ``--seeds N`` repeats with other samples and flips to show the spread. Also reported:
how many items confident learning flags, and the precision and recall of that flagged set.

    .venv/bin/python benchmarks/audit.py [--seeds 3] [--only cats_vs_dogs|sst2] [--backbone B]

Writes ``results/audit.json``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, dataset, print_table, save_results  # noqa: E402

FLIP_FRACTION = 0.10
TEXT_SAMPLE = 2000
TARGETS = {"cats_vs_dogs": 0.80, "sst2": 0.70}


def score(ranked: list[dict[str, str]], flipped: set[str]) -> dict[str, float]:
    """Precision (= recall) of the first len(flipped) rows, and precision / recall of the flagged rows."""
    k = len(flipped)
    top = {r["key"] for r in ranked[:k]}
    flagged = {r["key"] for r in ranked if r["is_label_issue"] == "True"}
    hits = len(flagged & flipped)
    return {"flipped": k, "recovered_at_k": len(top & flipped) / k, "flagged": len(flagged),
            "flagged_precision": hits / len(flagged) if flagged else float("nan"), "flagged_recall": hits / k}


def read_ranking(out: Path) -> list[dict[str, str]]:
    with (out / "label_issues.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def images(tmp: Path, seed: int, backbone: str | None) -> dict[str, object] | None:
    src = dataset("cats_vs_dogs")
    if src is None:
        return None
    rng = random.Random(seed)
    data = tmp / f"cats_vs_dogs-{seed}"
    train = sorted((p.parent.name, p) for p in (src / "train").glob("*/*") if p.is_file())
    flips = set(rng.sample(range(len(train)), round(FLIP_FRACTION * len(train))))
    classes = sorted({c for c, _ in train})
    flipped: set[str] = set()
    # neutral file names (the originals repeat across classes); a flipped image lands in the other class's folder
    for i, (cls, path) in enumerate(train):
        label = next(c for c in classes if c != cls) if i in flips else cls
        link = data / "train" / label / f"{i:05d}{path.suffix.lower()}"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), link)
        if i in flips:
            flipped.add(str(link))
    for j, path in enumerate(sorted(p for p in (src / "val").glob("*/*") if p.is_file())):
        link = data / "val" / path.parent.name / f"v{j:05d}{path.suffix.lower()}"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), link)
    out = tmp / f"audit-images-{seed}"
    args = ["audit", str(data), "--out", str(out)] + (["--backbone", backbone] if backbone else [])
    doc, wall = cli(args, tmp / "cache")
    ranked = [{**r, "key": r["path"]} for r in read_ranking(out)]
    return {"dataset": "cats_vs_dogs", "seed": seed, "items": doc["items"], "backbone": doc["backbone"],
            "C": doc["C"], "cv_accuracy": doc["cross_validated_accuracy"], "wall_s": wall,
            **score(ranked, flipped)}


def texts(tmp: Path, seed: int, backbone: str | None) -> dict[str, object] | None:
    src = dataset("sst2")
    if src is None:
        return None
    with (src / "train.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    sample = rng.sample(rows, TEXT_SAMPLE)
    flips = set(rng.sample(range(TEXT_SAMPLE), round(FLIP_FRACTION * TEXT_SAMPLE)))
    classes = sorted({r["label"] for r in rows})
    data = tmp / f"sst2-{seed}.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i, r in enumerate(sample):
            w.writerow([r["text"], next(c for c in classes if c != r["label"]) if i in flips else r["label"]])
    out = tmp / f"audit-texts-{seed}"
    args = ["audit", str(data), "--out", str(out)] + (["--backbone", backbone] if backbone else [])
    doc, wall = cli(args, tmp / "cache")
    # path is file:line; the header is line 1, so sample row i is line i + 2
    ranked = [{**r, "key": str(int(r["path"].rsplit(":", 1)[1]) - 2)} for r in read_ranking(out)]
    return {"dataset": "sst2", "seed": seed, "items": doc["items"], "backbone": doc["backbone"], "C": doc["C"],
            "cv_accuracy": doc["cross_validated_accuracy"], "wall_s": wall,
            **score(ranked, {str(i) for i in flips})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="flip draws per set (seed 0 is the acceptance run)")
    parser.add_argument("--only", choices=["cats_vs_dogs", "sst2"], default=None)
    parser.add_argument("--backbone", default=None, help="passed to audit (default: the audit's own default)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, run in (("cats_vs_dogs", images), ("sst2", texts)):
                if args.only in (None, name):
                    row = run(Path(tmp), seed, args.backbone)
                    if row is not None:
                        row["target"] = TARGETS[name]
                        row["pass"] = row["recovered_at_k"] >= TARGETS[name]
                        rows.append(row)
                        print(f"{name} seed {seed}: {row['recovered_at_k']:.3f} at k={row['flipped']}", file=sys.stderr)
    print_table(rows, ["dataset", "seed", "items", "backbone", "C", "cv_accuracy", "flipped", "recovered_at_k",
                       "target", "pass", "flagged", "flagged_precision", "flagged_recall", "wall_s"])
    acceptance = {r["dataset"]: {"precision_at_k": r["recovered_at_k"], "recall_at_k": r["recovered_at_k"],
                                 "target": r["target"], "pass": r["pass"]} for r in rows if r["seed"] == 0}
    save_results("audit", {"flip_fraction": FLIP_FRACTION, "text_sample": TEXT_SAMPLE, "acceptance": acceptance,
                           "rows": rows})


if __name__ == "__main__":
    main()
