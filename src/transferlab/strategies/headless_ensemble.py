"""headless_ensemble: ``headless`` on two (or more) backbones at once, their class probabilities averaged.

``backbone`` is the pool to draw from: backbone names joined by ``+``, or ``all`` (every image backbone). ``top``
of them are used: the ones ``rank`` scores highest (LogME) on the training data, so the choice is learned in
``fit`` and kept in ``backbones_``. With a pool no larger than ``top`` every backbone in it is used, unranked.

Why: on small data the accuracy of one backbone's classifier moves by several points with the split, and which
backbone wins moves with it. Averaging the two best-ranked ones cancels part of that. Over 10 random re-splits of
each shared image set (``benchmarks/compare_bench.py --resplits``) it was on average as good as the best single
backbone of each split, or better. The price is a second network at prediction time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import UserError
from transferlab.strategies.base import Strategy
from transferlab.strategies.headless import Headless


class HeadlessEnsemble(Strategy):
    name = "headless_ensemble"
    summary = "headless on the top-ranked backbones (default 2 by LogME), probabilities averaged"
    multi_backbone = True

    def __init__(self, backbone: str = "all", top: int = 2, C: float = 1.0, seed: int = 0) -> None:  # noqa: N803
        self.backbone = backbone
        self.top = top
        self.C = C
        self.seed = seed

    @classmethod
    def backbones_needed(cls, backbone: str) -> list[str]:
        """The pool ``backbone`` names: ``all`` -> every image backbone; ``a+b`` -> ``[a, b]``."""
        from transferlab.backbones import get_backbone, list_backbones

        if backbone == "all":
            return [s.name for s in list_backbones("image")]
        names = [b.strip() for b in backbone.split("+") if b.strip()]
        for b in names:
            get_backbone(b)
        return list(dict.fromkeys(names))

    def _choose(self, X: Any) -> list[str]:  # noqa: N803
        pool = self.backbones_needed(self.backbone)
        if not pool:
            raise UserError(f"headless_ensemble: no backbone in {self.backbone!r}")
        if len(pool) <= self.top:
            return pool
        from transferlab.features.ranking import rank_backbones

        return [r["backbone"] for r in rank_backbones(X, pool)[: self.top]]

    def fit(self, X: Any, y: Any = None) -> HeadlessEnsemble:  # noqa: N803
        if not isinstance(self.top, int) or self.top < 1:
            raise UserError(f"top must be a whole number >= 1, got {self.top!r}")
        X, y = self._as_dataset(X, y)  # noqa: N806
        chosen = self._choose(X)
        members = [Headless(backbone=b, C=self.C, seed=self.seed).fit(X, y) for b in chosen]
        self.backbones_ = chosen
        self.members_ = members
        self.classes_ = members[0].classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        self.check_is_fitted()
        X, _ = self._as_dataset(X)  # noqa: N806
        return np.mean([m.predict_proba(X) for m in self.members_], axis=0)

    def save_weights(self, directory: Path) -> dict[str, Any]:
        from transferlab.backbones import get_backbone

        self.check_is_fitted()
        members = []
        for i, m in enumerate(self.members_):
            sub = directory / f"member{i}"
            sub.mkdir()
            m.head_.save(sub)
            members.append({"folder": sub.name, **m.save_weights_config(),
                            "preprocessing": get_backbone(m.backbone).preprocessing.to_dict()})
        return {"kind": "ensemble", "members": members}
