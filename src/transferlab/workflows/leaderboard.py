"""What a compare run produces, and how it is written: the result, its rows, and the leaderboard files (JSON, CSV,
Markdown) and terminal table. Shared by :mod:`transferlab.workflows.compare` and the HTML report."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.data.report import DataReport

LEADERBOARD_COLUMNS = ["strategy", "backbone", "accuracy_mean", "accuracy_std", "macro_f1", "roc_auc",
                       "train_seconds", "latency_ms_p50", "size_mb"]


@dataclass(frozen=True)
class Candidate:
    strategy: str
    backbone: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.strategy}[{extra}]" if extra else self.strategy

    @property
    def key(self) -> str:
        return f"{self.label}|{self.backbone}"


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    runs: dict[str, list[dict[str, Any]]]
    protocol: str
    report: DataReport
    task: str = "image"
    winner: dict[str, Any] | None = None
    advice: dict[str, Any] | None = None
    warning: str | None = None
    seconds: float = 0.0
    cached_runs: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def aggregate(candidate: Candidate, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One leaderboard row from a candidate's runs (seeds or folds)."""
    accs = [r["accuracy"] for r in runs]
    aucs = [r["roc_auc"] for r in runs if r.get("roc_auc") is not None]
    latency = next((r["latency_ms_p50"] for r in runs if "latency_ms_p50" in r), None)
    used = {"+".join(r.get("backbones_used", [candidate.backbone])) for r in runs}
    return {  # an ensemble that chose the same backbones in every run is shown (and saved) with them
        "strategy": candidate.strategy, "backbone": used.pop() if len(used) == 1 else candidate.backbone,
        "key": candidate.key, "params": candidate.param_dict,
        "label": candidate.label, "layer": candidate.param_dict.get("layer", "top"),
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
        "macro_f1": float(np.mean([r["macro_f1"] for r in runs])),
        "roc_auc": float(np.mean(aucs)) if aucs else None,
        "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
        "latency_ms_p50": latency, "size_mb": runs[0]["size_mb"], "runs": len(runs),
    }


def write_leaderboard(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    public = [{c: r[c] for c in LEADERBOARD_COLUMNS} | {"params": r["params"]} for r in rows]
    (out_dir / "leaderboard.json").write_text(json.dumps(public, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*LEADERBOARD_COLUMNS, "params"])
    writer.writeheader()
    for r in public:
        writer.writerow({**r, "params": json.dumps(r["params"])})
    (out_dir / "leaderboard.csv").write_text(buf.getvalue())
    (out_dir / "leaderboard.md").write_text(markdown_table(rows) + "\n")


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| # | strategy | backbone | accuracy | macro-F1 | ROC AUC | train s | latency ms | size MB |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['label']} | {r['backbone']} | {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | "
                     f"{fmt(r['macro_f1'])} | {fmt(r['roc_auc'])} | {fmt(r['train_seconds'], 1)} | "
                     f"{fmt(r['latency_ms_p50'], 1)} | {fmt(r['size_mb'], 1)} |")
    return "\n".join(lines)


def terminal_table(rows: list[dict[str, Any]]) -> str:
    w = max([22, *(len(r["label"]) + 2 for r in rows)])
    wb = max([20, *(len(r["backbone"]) + 2 for r in rows)])
    lines = [f"{'#':>2}  {'strategy':<{w}}{'backbone':<{wb}}{'accuracy':>16}{'macro-F1':>10}{'train s':>9}"
             f"{'ms/item':>8}{'MB':>7}"]
    for i, r in enumerate(rows, 1):
        acc = f"{r['accuracy_mean']:.3f}±{r['accuracy_std']:.3f}"
        lines.append(f"{i:>2}  {r['label']:<{w}}{r['backbone']:<{wb}}{acc:>16}{r['macro_f1']:>10.3f}"
                     f"{r['train_seconds']:>9.1f}{fmt(r['latency_ms_p50'], 1):>8}{r['size_mb']:>7.1f}")
    return "\n".join(lines)
