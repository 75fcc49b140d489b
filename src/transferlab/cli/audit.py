"""``transferlab audit``: which labels are probably wrong (plus near-duplicates and outliers), to clean the data."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import EPILOG_DATA, add_task_options, positive_int, print_json, seed_int

HELP = "find probably wrong labels, near-duplicates and outliers in labelled data"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``audit``."""
    p = subparsers.add_parser("audit", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="""
Every item of DATA (train and evaluation splits together) gets class probabilities from a logistic regression on
frozen features that never saw it (stratified k-fold cross-validation); cleanlab's confident learning then flags
the labels that disagree with them, and its Datalab finds near-duplicates and outliers in the same features.

Writes into --out:
  label_issues.csv     every item, most suspect first: path (file:line for texts), text, given_label,
                       suggested_label, score (the out-of-fold probability of the given label: low = suspect),
                       is_label_issue (flagged by confident learning)
  near_duplicates.csv  groups of near-identical items (labels_agree says whether their labels match)
  outliers.csv         the most atypical items
  contact_sheet.html   the top suspects with their given and suggested labels (thumbnails, or a table of texts);
                       contact_sheet.png too for images
  audit.json           the summary (per class: items, suspects, labels suggested instead)

""" + EPILOG_DATA + "  a CSV/TSV/JSONL of text,label, or a folder with train.csv (and val.csv/test.csv).\n")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the audit into")
    p.add_argument("--backbone", default=None, metavar="B",
                   help="features to audit with (default: efficientnet_lite0 for images; for text the strongest "
                   "installed encoder that embeds the data within 5 minutes: mpnet, else minilm; "
                   "`transferlab models` lists them)")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--C", dest="C", type=_positive_float, default=None,
                   help="inverse regularisation of the logistic regression (default: chosen by 3-fold "
                   "cross-validated log-loss)")
    p.add_argument("--top", type=positive_int, default=30,
                   help="suspects shown in the contact sheet and in --json (default 30)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the folds (default 0)")
    p.add_argument("--eval-split", default=None, help="name of the evaluation folder (default: val, valid or test)")
    p.add_argument("--json", action="store_true", help="print the summary and the top suspects as JSON on stdout")
    add_task_options(p)


def summary_text(result: dict[str, Any]) -> str:
    """What a person reads: the counts, a per-class table, the first suspects and where the files are."""
    lines = [f"audited {result['items']} items with {result['backbone']} features "
             f"({result['folds']}-fold logistic regression, C={result['C']:g}, "
             f"cross-validated accuracy {result['cross_validated_accuracy']:.3f})",
             f"{result['label_issues']} suspect labels, {result['near_duplicate_groups']} near-duplicate groups "
             f"({result['near_duplicate_groups_with_different_labels']} with different labels), "
             f"{result['outliers']} outliers", ""]
    width = max(5, *(len(c) for c in result["per_class"]))
    lines.append(f"{'class':<{width}}  {'items':>6}  {'suspects':>8}  suggested instead")
    for c, v in result["per_class"].items():
        instead = ", ".join(f"{k} ({n})" for k, n in sorted(v["suggested"].items(), key=lambda kv: -kv[1]))
        lines.append(f"{c:<{width}}  {v['items']:>6}  {v['label_issues']:>8}  {instead}")
    if result["suspects"]:
        lines += ["", "most suspect first (score = out-of-fold probability of the given label):"]
        for r in result["suspects"][:10]:
            where = r["path"] if "text" not in r else f"{r['path']}  {r['text'][:60]!r}"
            lines.append(f"  {r['score']:.3f}  {r['given_label']} -> {r['suggested_label']}  {where}")
    lines += ["", f"wrote {result['files']['label_issues']} (every item, ranked), "
              f"{result['files']['contact_sheet']} and the rest into the same folder"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Audit through the workflow (which detects text or image data) and print the summary."""
    from transferlab.workflows.audit import audit

    result = audit(args.data, args.out, backbone=args.backbone, task=args.task, folds=args.folds, C=args.C,
                   seed=args.seed, top=args.top, eval_split=args.eval_split, text_column=args.text_column,
                   label_column=args.label_column)
    if args.json:
        print_json(result)
        return 0
    print(summary_text(result))
    return 0
