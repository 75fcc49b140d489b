"""Text classification accuracy on the shared sets (train split -> test split).

    .venv/bin/python benchmarks/text_bench.py [--strategies bow text_headless text_hybrid] [--datasets sst2 ag_news]
        [--zeroshot]

Prints a table and writes benchmarks/results/text.json. Targets (issue 5): sst2 >= 0.86 (best strategy),
ag_news >= 0.90, newsgroups20 >= 0.75, sms_spam macro-F1 >= 0.95, zero-shot ag_news >= 0.60.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFERLAB_QUIET", "1")

from transferlab.data.texts import read_text_file  # noqa: E402
from transferlab.evaluation import classification_metrics  # noqa: E402
from transferlab.workflows.common import build_strategy  # noqa: E402


def make_text_strategy(name, **params):
    return build_strategy(name, "text", params=params)


ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERLAB_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
DATASETS = ("sst2", "ag_news", "newsgroups20", "sms_spam")
TARGETS = {"sst2": ("accuracy", 0.86), "ag_news": ("accuracy", 0.90), "newsgroups20": ("accuracy", 0.75),
           "sms_spam": ("macro_f1", 0.95)}


def run(dataset: str, strategy: str) -> dict:
    train = read_text_file(SHARED / dataset / "train.csv")
    test = read_text_file(SHARED / dataset / "test.csv")
    train.classes = sorted(set(train.labels or []))
    test.classes = train.classes
    model = make_text_strategy(strategy)
    t0 = time.perf_counter()
    model.fit(train)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = model.predict_proba(test)
    predict_seconds = time.perf_counter() - t0
    m = classification_metrics(test.y, proba, model.classes_)
    metric, target = TARGETS[dataset] if strategy != "text_zeroshot" else ("accuracy", 0.60)
    return {"dataset": dataset, "strategy": model.name, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "train_seconds": train_seconds, "predict_seconds": predict_seconds, "n_train": len(train),
            "n_test": len(test), "target_metric": metric, "target": target, "met": m[metric] >= target}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", nargs="+", default=["bow", "text_headless"])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--zeroshot", action="store_true", help="also zero-shot on ag_news")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "text.json"))
    args = ap.parse_args()
    jobs = [(d, s) for d in args.datasets for s in args.strategies if (SHARED / d).exists()]
    if args.zeroshot:
        jobs.append(("ag_news", "text_zeroshot"))
    rows = []
    print(f"{'dataset':<14}{'strategy':<16}{'accuracy':>9}{'macro_f1':>9}{'train_s':>9}{'target':>14}")
    for dataset, strategy in jobs:
        r = run(dataset, strategy)
        rows.append(r)
        print(f"{dataset:<14}{r['strategy']:<16}{r['accuracy']:>9.4f}{r['macro_f1']:>9.4f}{r['train_seconds']:>9.1f}"
              f"{r['target_metric'][:3] + ' >= ' + str(r['target']):>12}{'  ok' if r['met'] else '  MISS'}",
              flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()).get("rows", []) if out.exists() else []
    keep = [p for p in previous if (p["dataset"], p["strategy"]) not in {(r["dataset"], r["strategy"]) for r in rows}]
    out.write_text(json.dumps({"rows": keep + rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
