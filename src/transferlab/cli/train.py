"""``transferlab train``: adapt a pretrained network to labelled data, evaluate it, save the model folder."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from transferlab.cli._common import EPILOG_DATA, add_split_options, add_task_options, metrics_table, print_json
from transferlab.errors import UserError

HELP = "train and evaluate a model on a labelled folder or CSV"


def add_parser(subparsers: Any) -> None:
    """Register ``train``; the backbone registry is imported here only for the default's name in the help."""
    from transferlab.backbones import DEFAULT_BACKBONE

    p = subparsers.add_parser("train", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=EPILOG_DATA + """
With no --strategy, train measures the data and picks among the strategies that take seconds (below: headless /
headless_ensemble for images, bow / text_headless / text_hybrid for text), printing what it chose and why.
Strategies (see `transferlab strategies`):
  headless     frozen backbone features + logistic regression (fast, strong on small data)
  frozen_head  frozen backbone + a small neural head with early stopping
  finetune, finetune_top, gradual_unfreeze, from_scratch   train the network itself (minutes; --resume)
  text_finetune  fine-tune the text transformer itself (minutes; --resume)
  text_fewshot   SetFit: tune the transformer on pairs of a few examples per class (minutes; --resume)
  auto         measure the data, pick, say why. Images: size, closeness to ImageNet, the backbone `rank` puts
               first. Text: examples per class (few -> text_fewshot), text length and amount (plenty of short
               texts -> text_finetune), else 3-fold cross-validation of bow, text_headless and text_hybrid
Examples:
  transferlab train photos/ --out ants_bees/
  transferlab train photos/ --backbone efficientnet_lite2 --strategy headless --param classifier=svm
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", required=False, default=None, help="folder to save the model into")
    add_task_options(p)
    p.add_argument("--feature-columns", default=None, metavar="COL,COL",
                   help="text data: side columns joined to the text features (numeric ones standardised, categorical "
                   "ones one-hot with a 'missing' level; force a kind with COL:numeric or COL:categorical); for bow, "
                   "text_headless and text_fewshot")
    p.add_argument("--backbone", default=None, help=f"pretrained network (default {DEFAULT_BACKBONE}; "
                   "see `transferlab models`); for finetune, finetune_top and gradual_unfreeze the default is auto: "
                   "the image backbone `rank` puts first on the training images; for headless_ensemble several "
                   "joined by + (default: all, of which the two rank puts first are used); for text, a folder from "
                   "`transferlab pretrain-text`")
    p.add_argument("--strategy", default=None,
                   help="how to adapt the network (`transferlab strategies` lists them). Default: measure the data "
                   "and choose among the strategies that take seconds (frozen features: for images the backbones "
                   "`rank` puts first, for text bow / text_headless / text_hybrid by cross-validation), printing the "
                   "choice and why; `auto` may also fine-tune (minutes) where that is advised; with --backbone or "
                   "--param and no --strategy: headless")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy parameter, e.g. classifier=svm, C=0.5, hidden=0, bf16=true; values are read "
                   "as JSON (true, false, null, numbers, lists), else as text (repeatable)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON on stdout")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (same DATA, --out and parameters) from its last save (every "
                   "epoch; every 2 minutes for text_fewshot's one epoch); for strategies that train a network "
                   "(finetune, finetune_top, gradual_unfreeze, from_scratch, text_finetune, text_fewshot, and auto "
                   "where it chose one of them)")
    add_split_options(p)


def parse_param(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as JSON when it is JSON (numbers, booleans, lists), else kept as a string."""
    if "=" not in text:
        raise UserError(f"--param needs KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def run(args: argparse.Namespace) -> int:
    """Train through the workflow (which detects text or image data) and print what it measured."""
    from transferlab.workflows.train import checkpoint_dir_for, train

    params = dict(parse_param(t) for t in args.param)
    try:
        result = train(args.data, out=args.out, strategy=args.strategy, backbone=args.backbone, params=params,
                       seed=args.seed, val_fraction=args.val_fraction, eval_split=args.eval_split,
                       resume=args.resume, task=args.task, text_column=args.text_column,
                       label_column=args.label_column, feature_columns=args.feature_columns)
    except KeyboardInterrupt:  # Ctrl-C: where epochs were saved, say how to go on from them
        saved = checkpoint_dir_for(args.out) if args.out else None
        if saved is not None and any(saved.rglob("checkpoint.pt")):
            print(f"transferlab: interrupted; the training state as last saved (after an epoch, or every 2 min "
                  f"within text_fewshot's epoch) is in {saved}: run the same command with --resume to continue "
                  "from there", file=sys.stderr)
            return 130
        raise
    if args.json:
        print_json(dict(result.metrics) | {"out": str(result.out) if result.out else None,
                                           "skipped": result.report.skipped})
        return 0
    source = result.model.config.get("backbone", args.backbone) or "text"
    name = result.model.config["strategy"]["name"]
    if "auto" in result.metrics:
        how = "auto" if args.strategy == "auto" else "with no --strategy, the fast auto"
        print(f"{how} chose {name} on {source}: {result.metrics['auto']['reason']}")
    print(f"{name} on {source}, evaluation split ({result.metrics['count']} items):")
    print(metrics_table(result.metrics))
    if result.out:
        print(f"saved to {result.out}/ (metrics.json, confusion_matrix.png, data_report.json)")
    return 0
