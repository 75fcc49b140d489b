"""Issue 13, acceptance 2 (ag_news >= 0.92): would averaging the fine-tuned mpnet's probabilities with a model on
the exact words (TF-IDF) close the gap? Measured, not adopted: it would not.

The fine-tuned model is what `--strategy auto` trained on ag_news then (text_finetune, mpnet, bf16, max_length 128,
2 epochs). Each word model is fitted twice: on text_finetune's own 90% training part (its probabilities on the
held-out 10% choose a blend weight, as a default could) and on all training texts (its test probabilities are
blended with the fine-tuned model's). Word models: `bow` (TF-IDF n-grams + logistic regression), `text_hybrid`
(TF-IDF + MiniLM or mpnet embeddings, naive Bayes blended in), Complement naive Bayes on TF-IDF. Blends: arithmetic
and geometric means at weights 0-0.7 on the word model; the weight a default would take (held-out accuracy, ties to
the smaller; held-out log-loss) and the best weight on the test split (an oracle no default can have).

    .venv/bin/python benchmarks/text_finetune_blend.py            # ~25 min on 2 cores with bf16 units
    .venv/bin/python benchmarks/text_finetune_blend.py --probs F  # only the blends, from a saved run's npz
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import dataset, print_table, save_results  # noqa: E402

WEIGHTS = np.round(np.arange(0, 0.71, 0.05), 2)


def _load(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def probabilities(root: Path, out: Path) -> None:
    """Held-out and test probabilities of every model, saved to ``out`` (npz)."""
    from sklearn.naive_bayes import ComplementNB

    from transferlab.data.images import stratified_split
    from transferlab.features.tfidf import TfidfFeaturizer
    from transferlab.strategies.text_bow import TextBow
    from transferlab.strategies.text_finetune import TextFinetune
    from transferlab.strategies.text_hybrid import TextHybrid

    x_tr, y_tr = _load(root / "train.csv")
    x_te, y_te = _load(root / "test.csv")
    tr, va = stratified_split([str(v) for v in y_tr], 0.1, 0)  # text_finetune's held-out split (seed 0)

    def sub(a: list[str], idx: list[int]) -> list[str]:
        return [a[i] for i in idx]

    probs: dict[str, np.ndarray] = {}
    ft = TextFinetune(backbone="mpnet", bf16=True, max_length=128, epochs=2).fit(x_tr, y_tr)
    classes = list(ft.classes_)
    probs["ft_va"], probs["ft_te"] = ft.predict_proba(sub(x_tr, va)), ft.predict_proba(x_te)
    for name, make in (("bow", TextBow), ("text_hybrid", TextHybrid),
                       ("text_hybrid_mpnet", lambda: TextHybrid(encoder="mpnet"))):
        m = make().fit(sub(x_tr, tr), sub(y_tr, tr))
        assert list(m.classes_) == classes
        probs[f"{name}_va"] = m.predict_proba(sub(x_tr, va))
        probs[f"{name}_te"] = make().fit(x_tr, y_tr).predict_proba(x_te)
    y_idx = np.array([classes.index(v) for v in y_tr])
    for alpha in (0.1, 1.0):
        f = TfidfFeaturizer(1, 0, 2, 300_000, max_df=0.5).fit(sub(x_tr, tr))
        nb = ComplementNB(alpha=alpha).fit(f.transform(sub(x_tr, tr)), y_idx[tr])
        probs[f"nb{alpha:g}_va"] = nb.predict_proba(f.transform(sub(x_tr, va)))
        f = TfidfFeaturizer(1, 0, 2, 300_000, max_df=0.5).fit(x_tr)
        probs[f"nb{alpha:g}_te"] = ComplementNB(alpha=alpha).fit(f.transform(x_tr), y_idx).predict_proba(
            f.transform(x_te))
    np.savez(out, classes=np.array(classes), yva=np.array(sub(y_tr, va)), yte=np.array(y_te), **probs)


def _blend(a: np.ndarray, b: np.ndarray, w: float, mode: str) -> np.ndarray:
    if mode == "arithmetic":
        return (1 - w) * a + w * b
    z = (1 - w) * np.log(np.clip(a, 1e-12, 1)) + w * np.log(np.clip(b, 1e-12, 1))
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def blends(npz: Path) -> list[dict[str, object]]:
    p = dict(np.load(npz))
    classes = list(p["classes"])
    y_va = np.array([classes.index(v) for v in p["yva"]])
    y_te = np.array([classes.index(v) for v in p["yte"]])

    def acc(q: np.ndarray, y: np.ndarray) -> float:
        return float((q.argmax(1) == y).mean())

    def logloss(q: np.ndarray, y: np.ndarray) -> float:
        return float(-np.log(np.clip(q[np.arange(len(y)), y], 1e-12, 1)).mean())

    rows = []
    for member in sorted({k[:-3] for k in p if k.endswith("_va") and k != "ft_va"}):
        for mode in ("arithmetic", "geometric"):
            va = [acc(_blend(p["ft_va"], p[f"{member}_va"], w, mode), y_va) for w in WEIGHTS]
            te = [acc(_blend(p["ft_te"], p[f"{member}_te"], w, mode), y_te) for w in WEIGHTS]
            ll = [logloss(_blend(p["ft_va"], p[f"{member}_va"], w, mode), y_va) for w in WEIGHTS]
            by_acc, by_ll, best = int(np.argmax(va)), int(np.argmin(ll)), int(np.argmax(te))
            alone = round(acc(p[f"{member}_te"], y_te), 4)
            rows.append({"word_model": member, "blend": mode, "word_model_alone": alone,
                         "fine_tuned_alone": round(te[0], 4),
                         "held_out_acc_w": float(WEIGHTS[by_acc]), "test_at_it": round(te[by_acc], 4),
                         "held_out_logloss_w": float(WEIGHTS[by_ll]), "test_at_that": round(te[by_ll], 4),
                         "oracle_w": float(WEIGHTS[best]), "oracle_test": round(te[best], 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probs", type=Path, help="a saved run's probabilities (npz): only compute the blends")
    args = ap.parse_args()
    root = dataset("ag_news")
    with tempfile.TemporaryDirectory() as tmp:
        npz = args.probs
        if npz is None:
            if root is None:
                sys.exit("ag_news is not in ../shared/datasets: nothing to measure")
            npz = Path(tmp) / "probs.npz"
            probabilities(root, npz)
        rows = blends(npz)
    print_table(rows, list(rows[0]))
    print("results:", save_results("text_finetune_blend", {"dataset": "ag_news", "rows": rows}))


if __name__ == "__main__":
    main()
