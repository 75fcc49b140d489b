"""``transferlab evaluate``: the metrics of a saved model on other labelled data."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import metrics_table, print_json

HELP = "metrics of a saved model on another labelled folder or CSV"


def add_parser(subparsers: Any) -> None:
    """Register ``evaluate``; the text columns default to the model's own, hence not the shared text options."""
    p = subparsers.add_parser("evaluate", help=HELP)
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", default=None, help="also write metrics.json, confusion_matrix.png, mistakes here")
    p.add_argument("--eval-split", default=None,
                   help="name of the evaluation folder or file in DATA (default: val, valid or test)")
    p.add_argument("--text-column", default=None, help="text models: column of the texts (default: as trained)")
    p.add_argument("--label-column", default=None, help="text models: column of the labels (default: as trained)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    """Evaluate through the workflow and print the metrics and the files it had to leave out."""
    from transferlab.workflows.train import evaluate

    metrics = evaluate(args.model_dir, args.data, out=args.out, eval_split=args.eval_split,
                       text_column=args.text_column, label_column=args.label_column)
    if args.json:
        print_json(metrics)
        return 0
    print(metrics_table(metrics))
    for s in metrics.get("skipped", []):
        print(f"  skipped {s['path']}: {s['reason']}")
    return 0
