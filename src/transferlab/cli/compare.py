"""``transferlab compare``: strategies x backbones side by side; the workflow picks the text or image candidates."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import EPILOG_DATA, add_split_options, add_task_options, print_json

HELP = "run strategies x backbones side by side; leaderboard, report, best model"


def add_parser(subparsers: Any) -> None:
    """Register ``compare``."""
    p = subparsers.add_parser("compare", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=EPILOG_DATA + """
The default set is fast: headless on every backbone, headless_ensemble (the two backbones rank puts first, their
probabilities averaged), headless on mid-layer features and frozen_head on the default backbone; --thorough adds
finetune, gradual_unfreeze and from_scratch (minutes each). Finished runs are cached, so a second compare on the same
data is quick. A strategy may carry parameters: --strategies headless:classifier=svm
Text (a CSV/TSV/JSONL, or a folder with train.csv): bow, text_headless on MiniLM and on GloVe, text_hybrid and,
when the class names are words, text_zeroshot; --thorough adds text_finetune, text_embedding_cnn and (64 or fewer
examples per class) text_fewshot. Pick encoders through parameters: --strategies text_headless:encoder=glove
Examples:
  transferlab compare photos/ --out bakeoff/     then open bakeoff/report.html
  transferlab compare reviews.csv --out bakeoff/ --thorough
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", default=None, help="folder for leaderboard.{json,csv,md}, report.html and best/")
    p.add_argument("--strategies", nargs="+", default=None, metavar="S", help="strategies to try (default: a fast set)")
    p.add_argument("--backbones", nargs="+", default=None, metavar="B", help="backbones to try (default: all)")
    p.add_argument("--thorough", action="store_true", help="also fine-tune (full, gradual) and train from scratch")
    p.add_argument("--seeds", type=int, default=3, help="runs per candidate (default 3)")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    add_task_options(p)
    p.add_argument("--feature-columns", default=None, metavar="COL,COL",
                   help="text data: side columns joined to the features of the candidates with a classifier head")
    add_split_options(p)


def run(args: argparse.Namespace) -> int:
    """Compare through the workflow (which checks options against the kind of data) and print the leaderboard."""
    from transferlab.workflows.compare import compare, terminal_table

    result = compare(args.data, out=args.out, strategies=args.strategies, backbones=args.backbones,
                     thorough=args.thorough, seeds=args.seeds, seed=args.seed, val_fraction=args.val_fraction,
                     eval_split=args.eval_split, task=args.task, text_column=args.text_column,
                     label_column=args.label_column, feature_columns=args.feature_columns)
    if args.json:
        print_json({"leaderboard": result.rows, "protocol": result.protocol, "winner": result.winner,
                    "advice": result.advice, "warning": result.warning, "seconds": result.seconds,
                    "cached_runs": result.cached_runs})
        return 0
    print(f"protocol: {result.protocol}; {result.seconds:.1f} s ({result.cached_runs} runs from the cache)")
    print(terminal_table(result.rows))
    if result.advice:
        print(f"advice: {result.advice['reason']}")
    if result.warning:
        print(f"warning: {result.warning}")
    if args.out:
        print(f"wrote {args.out}/leaderboard.json, leaderboard.csv, leaderboard.md, report.html; winner in "
              f"{args.out}/best/")
    return 0
