"""The official SQuAD v1.1 metric (``evaluate-v1.1.py``): normalised exact match and token F1, each the maximum over
a question's gold answers, averaged and given in percent; plus per-question results and the worst mistakes.

Normalisation is the official one, step for step: lower-case, drop ASCII punctuation (``string.punctuation``),
drop the articles a/an/the as whole words, collapse whitespace. tests/test_qa.py checks the numbers against a copy
of the official functions on tricky predictions. For SQuAD 2.0 questions with no answer the gold is the empty
string, so only an empty prediction scores (the v2.0 script's rule).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lower-case, remove punctuation, articles and extra whitespace (the official order: lower, punctuation,
    articles, whitespace)."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def f1_score(prediction: str, ground_truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def _golds(answers: Sequence[Any]) -> list[str]:
    out = [a["text"] if isinstance(a, Mapping) else str(a) for a in answers]
    return out or [""]  # no answer (SQuAD 2.0): only an empty prediction is right


def question_scores(prediction: str, answers: Sequence[Any]) -> tuple[float, float]:
    """(exact match 0/1, F1 0..1) of one prediction: the best over the gold answers."""
    golds = _golds(answers)
    if golds == [""]:
        em = float(normalize_answer(prediction) == "")
        return em, em
    return (max(float(exact_match_score(prediction, g)) for g in golds),
            max(f1_score(prediction, g) for g in golds))


def squad_metrics(examples: Sequence[Any], predictions: Mapping[str, str]) -> dict[str, Any]:
    """``exact_match`` and ``f1`` in percent over ``examples`` (objects with ``id``, ``question``, ``answers``),
    ``count``, and ``per_question`` rows; a question with no prediction scores 0 (as the official script does,
    which also warns)."""
    rows = []
    em_sum = f1_sum = 0.0
    for ex in examples:
        pred = predictions.get(ex.id, "")
        em, f1 = question_scores(pred, ex.answers)
        em_sum += em
        f1_sum += f1
        rows.append({"id": ex.id, "question": ex.question, "prediction": pred,
                     "gold": [a["text"] for a in ex.answers], "exact_match": em, "f1": f1})
    n = len(rows)
    return {"exact_match": 100.0 * em_sum / max(n, 1), "f1": 100.0 * f1_sum / max(n, 1), "count": n,
            "per_question": rows}


def worst_mistakes(per_question: Sequence[Mapping[str, Any]], k: int = 20,
                   confidence: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """The ``k`` worst answers: F1 0 first, the most confident of those first when confidences are given."""
    conf = confidence or {}
    wrong = [dict(r) for r in per_question if r["f1"] < 1.0]
    wrong.sort(key=lambda r: (r["f1"], -conf.get(r["id"], 0.0)))
    for r in wrong:
        if r["id"] in conf:
            r["score"] = conf[r["id"]]
    return wrong[:k]
