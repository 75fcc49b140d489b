"""``transferlab zeroshot``: classify into classes that have no training examples, from their names or attributes."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import add_task_options, positive_int, print_json, seed_int

HELP = "classify without training examples: from class names (ConSE, text descriptions) or attributes"


def add_parser(subparsers: Any) -> None:
    """Register ``zeroshot``."""
    p = subparsers.add_parser("zeroshot", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""
From class names (images, ConSE): the backbone's ImageNet head gives its 10 most probable ImageNet classes; the
MiniLM sentence embeddings of their names, weighted by those probabilities, place the image among meanings; it goes
to the class name nearest by cosine (probabilities: softmax of cosine / temperature). Names are English words
("golden retriever", "ants"; a word GloVe 6B does not know, such as a typo, is an error naming it); --classes
LABEL=words keeps LABEL in the output and embeds the words. --words glove uses GloVe 6B 50-d word vectors instead
(ConSE's original kind of space; multi-word names are averaged).
For text DATA the class names become "This text is about {label}." and each text goes to the nearest (MiniLM).

From attributes (images): FILE is a CSV with a header (class,attr1,attr2,...) and one row per class of 0/1
values. One logistic regression per attribute learns from the frozen features of DATA's classes that have
training images (seen); the other classes of FILE, and those named by --unseen, are predicted (unseen) from the
attribute probabilities (--method dap: product of per-attribute likelihoods; mean; cosine).

Classified: DATA's val/ images (or eval file) when it has a train/val split, else every image or row; for
attributes, only images of unseen classes, plus --images. When they are labelled, accuracy is printed beside
chance (1/classes), with a warning when it is near chance.

Examples:
  transferlab zeroshot photos/ --classes cat,dog
  transferlab zeroshot hymenoptera/ --classes ants=ant,bees=bee --json
  transferlab zeroshot textures/ --attributes textures.csv --unseen banded,bubbly,cracked
""")
    p.add_argument("data", metavar="DATA", help="images (a folder of class folders, with or without train/ and val/, "
                   "a folder of images, an image, a CSV of path,label) or text (a CSV/JSONL with a text column, "
                   "labelled or not, or a folder with train and test files)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--classes", default=None, metavar="A,B,C",
                     help="class names, comma-separated, each optionally LABEL=words (default: DATA's class folders "
                     "or labels)")
    how.add_argument("--attributes", default=None, metavar="FILE",
                     help="CSV of classes x binary attributes (first column the class name): zero-shot by attributes")
    p.add_argument("--unseen", default=None, metavar="A,B",
                   help="with --attributes: classes of FILE to hold out of training and predict, although DATA has "
                   "training images of them (FILE's classes without images are unseen anyway)")
    p.add_argument("--images", nargs="+", default=None, metavar="PATH",
                   help="with --attributes: more images (files or folders, unlabelled) to classify")
    p.add_argument("--backbone", default=None, help="image backbone (default efficientnet_lite0)")
    p.add_argument("--top-k", type=positive_int, default=10,
                   help="ConSE: how many of the ImageNet head's most probable classes to combine (default 10, the "
                   "ConSE paper's T)")
    p.add_argument("--words", choices=["glove", "minilm"], default="minilm",
                   help="ConSE: the space class names live in: minilm (MiniLM sentence embeddings of the names, the "
                   "default) or glove (GloVe 6B 50-d word vectors, averaged over the words of a name)")
    p.add_argument("--temperature", type=float, default=0.1,
                   help="ConSE: softmax temperature over cosines (default 0.1); changes probabilities, not labels")
    p.add_argument("--method", choices=["dap", "mean", "cosine"], default="dap",
                   help="attributes: how predicted attributes are matched to class signatures (default dap)")
    p.add_argument("--eval-split", default=None, help="name of the folder (or file) to classify (default: val, "
                   "valid or test)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the attribute classifiers (default 0)")
    p.add_argument("--json", action="store_true",
                   help='print {"predictions": [{"path", "label", "probabilities"}], "accuracy", "chance", ...}')
    add_task_options(p)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What a person reads after the predictions: how many, how good against chance, and what to do about it."""
    lines = []
    settings = ", ".join(f"{k} {v}" for k, v in result.get("settings", {}).items() if k != "descriptions")
    lines.append(f"zero-shot ({result['method']}; {settings}) over {len(result['classes'])} classes: "
                 f"{', '.join(result['classes'])}")
    if result.get("seen_classes"):
        lines.append(f"attributes learned from {result['train_images']} images of: {', '.join(result['seen_classes'])}")
    if "accuracy" in result:
        lines.append(f"accuracy {result['accuracy']:.4f} on {result['count']} labelled items "
                     f"(chance {result['chance']:.4f})")
    if result.get("advice"):
        lines.append(result["advice"])
    for row in result.get("attributes", []):
        if "accuracy_on_unseen" in row:
            share = row["accuracy_on_unseen"]
            lines.append(f"  attribute {row['attribute']:<20} right on {share:.0%} of the unseen classes' images")
    lines.extend(f"note: {n}" for n in result.get("notes", []))
    for s in result.get("skipped", []):
        lines.append(f"skipped {s['path']}: {s['reason']}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Call the workflow; print the predictions and the summary (or one JSON document)."""
    from transferlab.workflows.zeroshot import zeroshot

    result = zeroshot(args.data, classes=args.classes, attributes=args.attributes, unseen=args.unseen,
                      images=args.images, backbone=args.backbone, top_k=args.top_k, temperature=args.temperature,
                      method=args.method, task=args.task, eval_split=args.eval_split, text_column=args.text_column,
                      label_column=args.label_column, seed=args.seed,
                      words=args.words)
    if args.json:
        print_json(result)
        return 0
    for p in result["predictions"]:
        item = p.get("path") or p.get("text", "")
        item = item if len(item) <= 70 else item[:67] + "..."
        top = sorted(p["probabilities"].items(), key=lambda kv: -kv[1])[:3]
        probs = ", ".join(f"{k} {v:.3f}" for k, v in top)
        print(f"{item}: {p['label']}  ({probs})")
    print()
    print("\n".join(summary_lines(result)))
    return 0
