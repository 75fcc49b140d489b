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
Question answering (a SQuAD JSON file of your domain's labelled questions, split by passage, or a folder with
train.json and test.json): the reader given with --init as it is, fine-tuned on your questions, adapted to your
passages without their questions, and a reader trained on your questions alone, ranked by F1 (--strategies as_is
labels no_labels scratch picks some).
Examples:
  transferlab compare photos/ --out bakeoff/     then open bakeoff/report.html
  transferlab compare reviews.csv --out bakeoff/ --thorough
  transferlab compare in_domain.json --init reader/ --out bakeoff/
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", default=None, help="folder for leaderboard.{json,csv,md}, report.html and best/")
    p.add_argument("--strategies", nargs="+", default=None, metavar="S", help="strategies to try (default: a fast set)")
    p.add_argument("--backbones", nargs="+", default=None, metavar="B", help="backbones to try (default: all)")
    p.add_argument("--thorough", action="store_true", help="also fine-tune (full, gradual) and train from scratch")
    p.add_argument("--seeds", type=int, default=3, help="runs per candidate (default 3)")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    p.add_argument("--init", default=None, metavar="READER",
                   help="question answering: the trained reader to transfer (from `transferlab qa train`)")
    add_task_options(p)
    p.add_argument("--feature-columns", default=None, metavar="COL,COL",
                   help="text data: side columns joined to the features of the candidates with a classifier head")
    add_split_options(p)


def run(args: argparse.Namespace) -> int:
    """Compare through the workflow (which checks options against the kind of data) and print the leaderboard."""
    from transferlab.workflows.compare_qa import looks_like_squad

    if args.init is not None or looks_like_squad(args.data):
        return _run_qa(args)
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


def _run_qa(args: argparse.Namespace) -> int:
    from transferlab.errors import UserError
    from transferlab.workflows.compare_qa import compare_qa, looks_like_squad, qa_table

    if not looks_like_squad(args.data):
        raise UserError(f"{args.data}: --init is for question answering: give a SQuAD JSON file, or a folder with "
                        "train.json and test.json")
    if args.backbones or args.thorough or args.feature_columns or args.eval_split:
        raise UserError("--backbones, --thorough, --feature-columns and --eval-split are for classification data; "
                        "question answering compares the strategies as_is, labels, no_labels and scratch")
    result = compare_qa(args.data, out=args.out, init=args.init, strategies=args.strategies, seed=args.seed,
                        val_fraction=args.val_fraction)
    if args.json:
        print_json({"leaderboard": result.rows, "protocol": result.protocol, "winner": result.winner,
                    "notes": result.notes, "seconds": result.seconds, "cached_runs": result.cached_runs})
        return 0
    print(f"protocol: {result.protocol}; {result.seconds:.1f} s ({result.cached_runs} runs from the cache)")
    print(qa_table(result.rows))
    for note in result.notes:
        print(f"note: {note}")
    if args.out:
        print(f"wrote {args.out}/leaderboard.json, leaderboard.csv, leaderboard.md, report.html; winner "
              f"({result.winner}) in {args.out}/best/")
    return 0
