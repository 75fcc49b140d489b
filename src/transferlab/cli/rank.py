"""``transferlab rank``: which backbone (or text encoder) will transfer best, scored without training."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import add_split_options, add_task_options, print_json

HELP = "which backbone will transfer best, from cached features, in seconds"


def add_parser(subparsers: Any) -> None:
    """Register ``rank``."""
    p = subparsers.add_parser("rank", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""
Scores (higher is better), computed on the training split's frozen features without training (for text: the
MiniLM and mean-pooled GloVe encoders, or pretrain-text folders given to --backbones):
  logme     LogME, the evidence of a Bayesian linear model from features to labels (the ranking score)
  h_score   H-score: between-class over total feature covariance
  knn_loo   leave-one-out 5-nearest-neighbour accuracy
  imagenet_confidence   mean top-1 probability of the backbone's ImageNet head: how ImageNet-like the data is
""")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--backbones", nargs="+", default=None, metavar="B",
                   help="image backbones (default: all); for text: minilm, glove or pretrain-text folders")
    p.add_argument("--json", action="store_true", help='print {"ranking": [...]} as JSON on stdout')
    add_task_options(p)
    add_split_options(p)


def ranking_table(rows: list[dict[str, Any]]) -> str:
    """The ranking as a terminal table. The rows say their modality: text rows carry ``scored_rows`` (how many rows
    were scored, a sample of large data) and ``embed_seconds``; image rows ``imagenet_confidence``."""
    text = bool(rows) and "scored_rows" in rows[0]
    name, extra, width = ("encoder", "rows", 7) if text else ("backbone", "imagenet_conf", 15)
    lines = [f"{'rank':<6}{name:<22}{'logme':>8}{'h_score':>9}{'knn_loo':>9}{extra:>{width}}{'seconds':>9}"]
    for r in rows:
        value = str(r["scored_rows"]) if text else f"{r['imagenet_confidence']:.3f}"
        seconds = r.get("embed_seconds", 0.0) + r["score_seconds"]
        lines.append(f"{r['rank']:<6}{r['backbone']:<22}{r['logme']:>8.3f}{r['h_score']:>9.3f}{r['knn_loo']:>9.3f}"
                     f"{value:>{width}}{seconds:>9.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Rank through the workflow (which detects text or image data) and print the table."""
    from transferlab.workflows.rank import rank

    rows = rank(args.data, backbones=args.backbones, val_fraction=args.val_fraction, seed=args.seed,
                eval_split=args.eval_split, task=args.task, text_column=args.text_column,
                label_column=args.label_column)
    if args.json:
        print_json({"ranking": rows})
        return 0
    print(ranking_table(rows))
    return 0
