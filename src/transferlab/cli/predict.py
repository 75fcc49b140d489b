"""``transferlab predict``: labels for images or texts from a saved model; the reading is the workflow's.

With ``--out FILE.csv`` (or ``.jsonl``) the predictions are streamed into the file batch by batch instead of printed,
and an interrupted run continues when the same command is run again (see
:func:`transferlab.workflows.predict.predict_to_file`). Unreadable inputs are then rows with an ``error`` in the
file and counted in the summary, not a failed run: the exit code is 0 once every input has its row.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from transferlab.cli._common import positive_int, print_json
from transferlab.errors import UserError

HELP = "predict labels of images (or texts) with a saved model"


def add_parser(subparsers: Any) -> None:
    """Register ``predict``."""
    p = subparsers.add_parser("predict", help=HELP)
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("inputs", metavar="INPUT", nargs="*",
                   help="image files, folders of images or CSVs with a path column; for a text model, the texts")
    p.add_argument("--file", default=None, help="also read inputs from this file, one per line; for a text model a "
                   ".csv/.tsv/.jsonl file is read by column (the text column and any side feature columns)")
    p.add_argument("--top-k", type=positive_int, default=3, help="how many labels to show per input (default 3)")
    p.add_argument("--json", action="store_true",
                   help='print {"predictions": [{"input", "label", "probabilities"}, ...]} as JSON on stdout '
                   "(with --out: the run's summary)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="stream the predictions into FILE.csv or FILE.jsonl in batches, for inputs of any size; "
                   "running the same command again after an interruption resumes (progress in FILE.progress.json)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="with --out: inputs predicted and written per batch (default 64)")
    p.add_argument("--restart", action="store_true",
                   help="with --out: start FILE over instead of resuming it")


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON entry) per input; inputs that could not be used are errors: exit 2. With --out,
    write them to the file and exit 0 (unusable inputs are rows with an error there)."""
    if args.out is not None:
        return _run_to_file(args)
    if args.restart or args.batch_size is not None:
        raise UserError("--restart and --batch-size apply to --out FILE only")
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


def _run_to_file(args: argparse.Namespace) -> int:
    from transferlab.workflows.predict import predict_to_file

    try:
        summary = predict_to_file(args.model_dir, args.inputs, args.out, file=args.file, top_k=args.top_k,
                                  batch_size=args.batch_size or 64, resume=not args.restart)
    except KeyboardInterrupt:
        print(f"transferlab: {args.out} keeps the finished batches; run the same command again to resume",
              file=sys.stderr)
        raise
    if summary["already_complete"]:
        line = f"{summary['out']}: already complete, {summary['total']} rows; nothing predicted (--restart to redo)"
    else:
        line = (f"{summary['out']}: {summary['total']} rows, {summary['predicted']} predicted and "
                f"{summary['failed']} unreadable in {summary['seconds']:.1f} s")
        if summary["skipped_as_done"]:
            line += f", {summary['skipped_as_done']} kept from the interrupted run"
    print(line, file=sys.stderr)
    if args.json:
        print_json(summary)
    return 0
