"""``transferlab predict``: labels for images or texts from a saved model; the reading is the workflow's."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from transferlab.cli._common import positive_int, print_json

HELP = "predict labels of images (or texts) with a saved model"


def add_parser(subparsers: Any) -> None:
    """Register ``predict``."""
    p = subparsers.add_parser("predict", help=HELP)
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("inputs", metavar="INPUT", nargs="*",
                   help="image files (or folders of images); for a text model, the texts themselves")
    p.add_argument("--file", default=None, help="also read inputs from this file, one per line; for a text model a "
                   ".csv/.tsv/.jsonl file is read by column (the text column and any side feature columns)")
    p.add_argument("--top-k", type=positive_int, default=3, help="how many labels to show per input (default 3)")
    p.add_argument("--json", action="store_true",
                   help='print {"predictions": [{"input", "label", "probabilities"}, ...]} as JSON on stdout')


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON entry) per input; inputs that could not be used are errors: exit 2."""
    from transferlab.workflows.predict import predict

    predictions = predict(args.model_dir, args.inputs, file=args.file, top_k=args.top_k)
    if args.json:
        print_json({"predictions": predictions})
    else:
        for p in predictions:
            if "error" in p:
                print(f"{p['input']}: ERROR {p['error']}")
            else:
                probs = ", ".join(f"{k} {v:.3f}" for k, v in p["probabilities"].items())
                print(f"{p['input']}: {p['label']}  ({probs})")
    failed = [p for p in predictions if "error" in p]
    for p in failed:
        print(f"error: {p['input']}: {p['error']}", file=sys.stderr)
    return 2 if failed else 0
