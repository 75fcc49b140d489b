"""What several commands share: the data options, and how results are printed.

Kept in one place so that an option means the same thing, with the same default and help, in every command that
takes it, and so that ``--json`` output and the metrics table look alike everywhere. Only the standard library is
imported here: every command module imports this one while the parser is built, before any work starts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

EPILOG_DATA = """\
DATA can be:
  a folder with train/ and val/ (or valid/, test/), each with one subfolder per class;
  a single folder with one subfolder per class (split by --val-fraction, stratified, with --seed);
  a CSV with columns path,label (paths relative to the CSV; split the same way).
Unreadable files (empty, truncated, not an image, too large) are left out and listed in the data report.
"""


def add_text_columns(p: argparse.ArgumentParser) -> None:
    """--text-column and --label-column, for commands that read labelled text data (defaults text and label)."""
    p.add_argument("--text-column", default="text", help="text data: column of the texts (default text)")
    p.add_argument("--label-column", default="label", help="text data: column of the labels (default label)")


def add_task_options(p: argparse.ArgumentParser) -> None:
    """--task and the text columns: the workflow detects the kind of data when --task is not given."""
    p.add_argument("--task", choices=["image", "text"], default=None,
                   help="kind of data (default: text when DATA is a CSV/TSV/JSONL with a text column or a folder with "
                   "train.csv, else image)")
    add_text_columns(p)


def add_split_options(p: argparse.ArgumentParser) -> None:
    """How the evaluation split is found or made, and the seed that makes it (and training) repeatable."""
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of each class held out for evaluation when DATA has no eval split (default 0.2)")
    p.add_argument("--eval-split", default=None, help="name of the evaluation folder (default: val, valid or test)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for splits and training (default 0)")


def positive_int(text: str) -> int:
    """An argparse type for counts such as --top-k, so that 0 is a usage error (exit 2) before anything loads."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def seed_int(text: str) -> int:
    """An argparse type for --seed: a whole number from 0 to 2**32 - 1 (what numpy and scikit-learn take, the range
    ``--param seed`` is checked against), so ``--seed -1`` is a usage error (exit 2) before anything trains."""
    from transferlab.strategies.base import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {SEED_MAX}, got {value}")
    return value


def print_json(doc: Any) -> None:
    """The one JSON document a ``--json`` command writes on stdout (values JSON cannot hold become strings)."""
    print(json.dumps(doc, indent=2, default=str))


def metrics_table(metrics: dict[str, Any]) -> str:
    """The headline metrics, one per line, as train and evaluate print them; absent ones are left out."""
    keys = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "count", "train_seconds"]
    lines = []
    for k in keys:
        v = metrics.get(k)
        if v is None:
            continue
        lines.append(f"  {k:<18} {v:.4f}" if isinstance(v, float) else f"  {k:<18} {v}")
    return "\n".join(lines)
