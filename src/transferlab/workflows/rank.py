"""rank: which backbone (image network or text encoder) will transfer best, in seconds, before any training.

Frozen features of the training split come from the cache (extracted once if needed); the scores are pure functions
of the arrays (:mod:`transferlab.analysis.transferability`, :mod:`transferlab.features.ranking`). No network is
trained.
"""

from __future__ import annotations

import os
from typing import Any

from transferlab.data.labelled import Columns
from transferlab.features.ranking import SCORE_SAMPLE, candidate_backbones, rank_backbones, sample, score_features
from transferlab.workflows.common import prepare, report_lines


def rank(data: str | os.PathLike[str], backbones: list[str] | None = None, val_fraction: float = 0.2, seed: int = 0,
         eval_split: str | None = None, task: str | None = None, text_column: str = "text",
         label_column: str = "label") -> list[dict[str, Any]]:
    """Rank the backbones of DATA's modality (images or text) on its training split."""
    prepared = prepare(data, task, val_fraction, seed, eval_split, Columns(text_column, label_column))
    report_lines(prepared.report)
    return rank_backbones(prepared.train, backbones, seed, prepared.task)


__all__ = ["SCORE_SAMPLE", "candidate_backbones", "rank", "rank_backbones", "sample", "score_features"]
