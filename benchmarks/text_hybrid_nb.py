"""Issue 13, point 2: what averaging `text_hybrid`'s logistic regression with a Complement Naive Bayes on its TF-IDF
block adds, per data set, measured on the training split first.

For each data set: k-fold cross-validation on the training split (TF-IDF refitted per fold, as `text_hybrid`:
unigrams, min_df 2, max_df 0.5; mpnet or MiniLM embeddings at weight 0.5; logistic regression C 30) gives
out-of-fold probabilities of the regression and of naive Bayes (alpha 0.1 / 0.3 / 1.0); each blend weight (0, 0.25,
0.5, 0.75: the grid `text_hybrid` chooses from; 1: naive Bayes alone) is scored on them (the number a choice may rest
on), and the same fit on the whole training split is scored on the test split (reported, never used to choose).
Last, `text_hybrid` with its default parameters (weight chosen by its own 3-fold CV) is trained and scored on the
test split. Embeddings come through the feature cache, as the strategies embed (a rerun does not embed again).

    .venv/bin/python benchmarks/text_hybrid_nb.py [--datasets newsgroups20,ag_news,sms_spam,sst2] [--encoder mpnet]

Rows go to benchmarks/results/text_hybrid_nb.json (keyed by data set and encoder).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, dataset, print_table, save_results  # noqa: E402
from text_hybrid_sweep import read  # noqa: E402

ALPHAS = (0.1, 0.3, 1.0)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def probabilities(x_fit: list[str], y_fit: np.ndarray, e_fit: np.ndarray, x_other: list[str], e_other: np.ndarray,
                  n_classes: int) -> dict[str, np.ndarray]:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB

    from transferlab.features.tfidf import TfidfFeaturizer

    f = TfidfFeaturizer(1, 0, 2, 300_000, max_df=0.5).fit(x_fit)
    a, b = f.transform(x_fit), f.transform(x_other)
    out = {}
    lr = LogisticRegression(C=30.0, max_iter=2000).fit(sparse.hstack([a, sparse.csr_matrix(e_fit * 0.5)], "csr"), y_fit)
    out["lr"] = np.zeros((len(x_other), n_classes))
    out["lr"][:, lr.classes_] = lr.predict_proba(sparse.hstack([b, sparse.csr_matrix(e_other * 0.5)], "csr"))
    for alpha in ALPHAS:
        nb = ComplementNB(alpha=alpha).fit(a, y_fit)
        out[f"nb{alpha:g}"] = np.zeros((len(x_other), n_classes))
        out[f"nb{alpha:g}"][:, nb.classes_] = nb.predict_proba(b)
    return out


def main() -> None:
    from sklearn.model_selection import StratifiedKFold

    from transferlab.data.texts import TextDataset
    from transferlab.features import extract_features
    from transferlab.strategies import make_strategy

    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="newsgroups20,ag_news,sms_spam,sst2")
    ap.add_argument("--encoder", default="mpnet")
    ap.add_argument("--folds", type=int, default=4)
    args = ap.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    path = RESULTS / "text_hybrid_nb.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "machine"} if path.exists() else {}
    table = []
    for name in args.datasets.split(","):
        root = dataset(name)
        if root is None:
            print(f"{name}: not in the shared datasets folder, skipped")
            continue
        x_train, l_train = read(root / "train.csv")
        x_test, l_test = read(root / "test.csv")
        classes = sorted(set(l_train))
        y_train = np.asarray([classes.index(v) for v in l_train])
        y_test = np.asarray([classes.index(v) for v in l_test])
        # through the feature cache, as text_hybrid embeds them (same vectors; a rerun does not embed again)
        e_train = extract_features(args.encoder, x_train, max_length=256).arrays["features"]
        e_test = extract_features(args.encoder, x_test, max_length=256).arrays["features"]
        oof = {k: np.zeros((len(y_train), len(classes))) for k in ("lr", *(f"nb{a:g}" for a in ALPHAS))}
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=0).split(np.zeros(len(y_train)), y_train)
        for fit_idx, val_idx in folds:
            part = probabilities([x_train[i] for i in fit_idx], y_train[fit_idx], e_train[fit_idx],
                                 [x_train[i] for i in val_idx], e_train[val_idx], len(classes))
            for k, p in part.items():
                oof[k][val_idx] = p
        test = probabilities(x_train, y_train, e_train, x_test, e_test, len(classes))
        rows = []
        for alpha in ALPHAS:
            for w in WEIGHTS:
                def acc(p: dict[str, np.ndarray], y: np.ndarray, alpha: float = alpha, w: float = w) -> float:
                    return round(float(np.mean(((1 - w) * p["lr"] + w * p[f"nb{alpha:g}"]).argmax(1) == y)), 4)

                rows.append({"dataset": name, "nb_alpha": alpha, "nb_weight": w, "cv_train": acc(oof, y_train),
                             "test": acc(test, y_test)})
        start = time.perf_counter()
        model = make_strategy("text_hybrid", modality="text", encoder=args.encoder).fit(
            TextDataset.from_texts(x_train, l_train))
        proba = model.predict_proba(TextDataset.from_texts(x_test, l_test))
        default = {"dataset": name, "nb_alpha": model.nb_alpha, "nb_weight": f"{model.naive_bayes_:g} (chosen)",
                   "cv_train": None, "test": round(float(np.mean(np.asarray(model.classes_)[proba.argmax(1)]
                                                                 == np.asarray(l_test))), 4),
                   "seconds": round(time.perf_counter() - start, 1)}
        print_table([*rows, default], ["dataset", "nb_alpha", "nb_weight", "cv_train", "test"])
        table += [*rows, default]
        old[f"{name}/{args.encoder}"] = {"folds": args.folds, "rows": rows, "default_text_hybrid": default}
    print("results:", save_results("text_hybrid_nb", old))


if __name__ == "__main__":
    main()
