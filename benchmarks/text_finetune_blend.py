"""Issue 13, acceptance 2 (ag_news >= 0.92): would averaging the fine-tuned mpnet's probabilities with a model on
the exact words (TF-IDF) close the gap? Measured, not adopted: it would not.

The fine-tuned model is what `--strategy auto` trains on ag_news on this CPU (text_finetune with auto's recipe; with
bf16 units: mpnet, bf16, max_length 128, 2 epochs). Each word model is fitted twice: on text_finetune's own 90%
training part (its probabilities on the held-out 10% choose a blend weight, as a default could) and on all training
texts (its test probabilities are blended with the fine-tuned model's). Word models: `bow` (TF-IDF n-grams + logistic
regression), `text_hybrid` (TF-IDF + MiniLM or mpnet embeddings, naive Bayes blended in), Complement naive Bayes on
text_hybrid's TF-IDF alone (alpha 0.1 and 1). Blends: arithmetic
and geometric means at weights 0-0.7 on the word model; the weight a default would take (held-out accuracy, ties to
the smaller; held-out log-loss) and the best weight on the test split (an oracle no default can have).

    .venv/bin/python benchmarks/text_finetune_blend.py            # ~25 min on 2 cores with bf16 units
    .venv/bin/python benchmarks/text_finetune_blend.py --probs F  # only the blends, from a saved run's npz
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import dataset, print_table, save_results  # noqa: E402

WEIGHTS = np.round(np.arange(0, 0.71, 0.05), 2)


def probabilities(root: Path, out: Path) -> None:
    """Held-out and test probabilities of every model, saved to ``out`` (npz)."""
    from transferlab.analysis.advice import finetune_params
    from transferlab.backbones import finetuned_text_body
    from transferlab.data.images import stratified_split
    from transferlab.data.texts import read_text_file
    from transferlab.strategies.text_bow import TextBow
    from transferlab.strategies.text_finetune import TextFinetune
    from transferlab.strategies.text_hybrid import TextHybrid

    train, test = read_text_file(root / "train.csv"), read_text_file(root / "test.csv")
    y_tr = list(train.labels or [])
    tr, va = stratified_split(y_tr, 0.1, 0)  # text_finetune's held-out split (seed 0)
    fit_part, held_out = train.subset(tr), train.subset(va)
    body, top, _ = finetuned_text_body()  # what --strategy auto fine-tunes on this CPU (ag_news: max_length 128)
    probs: dict[str, np.ndarray] = {}
    ft = TextFinetune(**finetune_params(body, 128, top)).fit(train)
    classes = list(ft.classes_)
    probs["ft_va"], probs["ft_te"] = ft.predict_proba(held_out), ft.predict_proba(test)
    word_models = {"bow": TextBow, "text_hybrid": TextHybrid, "text_hybrid_mpnet": lambda: TextHybrid(encoder="mpnet"),
                   # naive Bayes alone: text_hybrid's TF-IDF and Complement NB with all the weight on the latter
                   "nb0.1": lambda: TextHybrid(naive_bayes=1.0, nb_alpha=0.1),
                   "nb1": lambda: TextHybrid(naive_bayes=1.0, nb_alpha=1.0)}
    for name, make in word_models.items():
        m = make().fit(fit_part)
        assert list(m.classes_) == classes
        probs[f"{name}_va"] = m.predict_proba(held_out)
        probs[f"{name}_te"] = make().fit(train).predict_proba(test)
    np.savez(out, classes=np.array(classes), yva=np.array([y_tr[i] for i in va]),
             yte=np.array(test.labels), **probs)


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
