"""Tasks as data: what is predicted is described once, and the saved model, the metrics and the training loop take it
from there; the loop asks the objective for its loss and metrics (classification is one case)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from transferlab.errors import UserError
from transferlab.tasks import Task
from transferlab.training import Classification, Objective, PairSimilarity, TrainConfig, objective_for, train_loop


def _blobs(n: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)) + 2.5 * y[:, None]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def test_classification_objective_reports_loss_and_accuracy_and_learns() -> None:
    x, y = _blobs()
    model = nn.Linear(4, 2)
    cfg = TrainConfig(epochs=60, lr=0.1, patience=None, seed=0)
    history = train_loop(model, [{"params": list(model.parameters())}], lambda e: [(x[:80], y[:80])],
                         lambda: [(x[80:], y[80:])], 1, cfg, progress=False, objective=objective_for(Task()))
    last = history.epochs[-1]
    assert list(last) == ["epoch", "train_loss", "train_accuracy", "seconds", "val_loss", "val_accuracy"]
    assert last["val_accuracy"] > 0.9 and last["train_loss"] < history.epochs[0]["train_loss"]


def test_another_objective_needs_no_second_loop() -> None:
    """A pair objective (SetFit's cosine regression) through the same loop: its rows carry its own metrics."""
    x, _ = _blobs(40)
    targets = torch.tensor([1.0] * 20 + [0.0] * 20)

    class Cosine(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 3)

        def forward(self, pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            a, b = pair
            return nn.functional.cosine_similarity(self.proj(a), self.proj(b), dim=1)

    a = x
    b = torch.cat([x[:20] + 0.01, -x[20:]])  # alike pairs first, opposite ones after
    model = Cosine()
    cfg = TrainConfig(epochs=30, lr=0.05, patience=None, seed=0)
    history = train_loop(model, [{"params": list(model.parameters())}], lambda e: [((a, b), targets)], None, 1,
                         cfg, progress=False, objective=PairSimilarity())
    assert set(history.epochs[0]) == {"epoch", "train_loss", "seconds"}
    assert history.epochs[-1]["train_loss"] < 0.5 * history.epochs[0]["train_loss"]
    with pytest.raises(UserError, match="monitor"):  # early stopping on a metric the objective does not report
        train_loop(model, [{"params": list(model.parameters())}], lambda e: [((a, b), targets)],
                   lambda: [((a, b), targets)], 1, TrainConfig(epochs=1, monitor="val_accuracy"), progress=False,
                   objective=PairSimilarity())
    assert isinstance(Classification(), Objective)


def test_a_saved_model_records_its_target_and_evaluate_uses_its_metrics(tmp_path: Path) -> None:
    from transferlab.model import Model
    from transferlab.workflows.train import evaluate, train

    rows = ["text,label"] + [f"great lovely film {i},pos" for i in range(12)] + \
        [f"awful boring film {i},neg" for i in range(12)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    result = train(tmp_path / "r.csv", out=tmp_path / "m", strategy="bow", val_fraction=0.25)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["target"] == {"kind": "classification", "target": "label", "classes": ["neg", "pos"],
                                "outputs": "class probabilities"}
    model = Model.load(tmp_path / "m")
    assert model.target == Task("classification", "label", ("neg", "pos"))
    metrics = evaluate(tmp_path / "m", tmp_path / "r.csv")
    assert metrics["accuracy"] == 1.0 and result.metrics["accuracy"] == 1.0
    # a model saved before targets were recorded is a single-label classifier over its labels
    del config["target"]
    assert Task.from_dict(config.get("target"), model.classes) == Task(classes=("neg", "pos"))
    with pytest.raises(UserError, match="unknown task kind 'spans'"):
        Task("spans")
