"""Issue 13, point 2: what `text_hybrid`'s features could add on a text set, measured on its train split first.

For each setting: k-fold cross-validation accuracy on the training split (the number a choice may rest on) and the
accuracy on the test split (reported, never used to choose). Settings: TF-IDF words (as `text_hybrid`: unigrams,
min_df 2, max_df 0.5) optionally with character 2-N grams (``--char``), the frozen embeddings of one or two encoders
(each block L2-normalised as cached, times its weight), and the logistic regression's C.

    .venv/bin/python benchmarks/text_hybrid_sweep.py [--dataset newsgroups20] [--folds 4]

Rows go to benchmarks/results/text_hybrid_sweep.json (keyed by data set).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, dataset, print_table, save_results  # noqa: E402


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main() -> None:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from transferlab.features.text import text_encoder
    from transferlab.features.tfidf import TfidfFeaturizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="newsgroups20")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--char", default="0,4,5", help="longest character n-gram; 0 for words only")
    ap.add_argument("--embeddings", default="mpnet:0.35;mpnet:0.5;mpnet:0.7;mpnet:0.35+minilm:0.35",
                    help="';'-separated settings, each '+'-joined encoder:weight blocks")
    ap.add_argument("--C", default="10,30,100")
    args = ap.parse_args()
    root = dataset(args.dataset)
    if root is None:
        sys.exit(f"{args.dataset}: not in the shared datasets folder")
    warnings.simplefilter("ignore", FutureWarning)
    x_train, l_train = read(root / "train.csv")
    x_test, l_test = read(root / "test.csv")
    classes = sorted(set(l_train))
    y_train = np.asarray([classes.index(v) for v in l_train])
    y_test = np.asarray([classes.index(v) for v in l_test])
    settings = [[(b.split(":")[0], float(b.split(":")[1])) for b in s.split("+")] for s in args.embeddings.split(";")]
    vectors = {}
    for name in sorted({e for s in settings for e, _ in s}):
        enc = text_encoder(name, 256)
        vectors[name] = (enc.embed(x_train), enc.embed(x_test))
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(np.zeros(len(y_train)), y_train))
    rows = []
    for char in [int(c) for c in args.char.split(",")]:
        def tfidf(fit_texts: list[str], other: list[str], char: int = char) -> tuple:
            f = TfidfFeaturizer(1, char, 2, 300_000, max_df=0.5).fit(fit_texts)
            return f.transform(fit_texts), f.transform(other)

        parts = [(*tfidf([x_train[i] for i in tr], [x_train[i] for i in te]), tr, te, "train") for tr, te in folds]
        full = (*tfidf(x_train, x_test), np.arange(len(y_train)), np.arange(len(y_test)), "test")
        for blocks, c in itertools.product(settings, [float(v) for v in args.C.split(",")]):
            def accuracy(part: tuple, blocks: list = blocks, c: float = c) -> float:
                a, b, tr, te, other = part
                dense_a = [sparse.csr_matrix(vectors[e][0][tr] * w) for e, w in blocks]
                dense_b = [sparse.csr_matrix(vectors[e][0 if other == "train" else 1][te] * w) for e, w in blocks]
                y_fit, y_held = y_train[tr], (y_train if other == "train" else y_test)[te]
                clf = LogisticRegression(C=c, max_iter=2000).fit(sparse.hstack([a, *dense_a], format="csr"), y_fit)
                return float((clf.predict(sparse.hstack([b, *dense_b], format="csr")) == y_held).mean())

            rows.append({"char_ngrams": char, "embeddings": "+".join(f"{e}:{w:g}" for e, w in blocks), "C": c,
                         "cv_train": round(float(np.mean([accuracy(p) for p in parts])), 4),
                         "test": round(accuracy(full), 4)})
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows, ["char_ngrams", "embeddings", "C", "cv_train", "test"])
    best = max(rows, key=lambda r: r["cv_train"])
    print(f"best by {args.folds}-fold CV on train: {best}")
    path = RESULTS / "text_hybrid_sweep.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "machine"} if path.exists() else {}
    old[args.dataset] = {"folds": args.folds, "rows": rows, "best_by_cv": best}
    print("results:", save_results("text_hybrid_sweep", old))


if __name__ == "__main__":
    main()
