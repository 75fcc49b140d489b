"""``transferlab models``: every registered backbone, image and text, in one table."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import print_json

HELP = "the pretrained backbones available offline"

SPEED_NOTE = ("items/s on the project's 2 CPU cores: images per second for image backbones (frozen feature\n"
              "  extraction, ONNX Runtime, batch 32; benchmarks/extraction_speed.py), sentences per second for text\n"
              "  encoders (cold cache; benchmarks/text_encoder_speed.py); - where not measured")


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def models_table(rows: list[dict[str, Any]]) -> str:
    """One line per backbone; what does not apply (input size and ImageNet accuracy for text) shows as -."""
    width = max([len("name"), *(len(r["name"]) for r in rows)]) + 2
    lines = [f"{'name':<{width}}{'modality':<10}{'params':>8}{'MB':>7}{'features':>10}{'input':>7}"
             f"{'ImageNet top-1':>16}{'items/s':>9}"]
    for r in rows:
        name = r["name"] if r.get("installed", True) else r["name"] + "*"
        lines.append(f"{name:<{width}}{r['modality']:<10}{_fmt(r['params_millions'], '.2f', 'M'):>8}"
                     f"{_fmt(r.get('size_mb'), '.1f'):>7}"
                     f"{_fmt(r['feature_dim'], 'd'):>10}{_fmt(r['input_size'], 'd', 'px'):>7}"
                     f"{_fmt(r['imagenet_top1'], '.1f', '%'):>16}{_fmt(r['items_per_second'], '.0f'):>9}")
    return "\n".join(lines)


def add_parser(subparsers: Any) -> None:
    """Register ``models``."""
    p = subparsers.add_parser("models", help=HELP)
    p.add_argument("--json", action="store_true", help='print {"models": [...]}, one object per backbone, as JSON')


def run(args: argparse.Namespace) -> int:
    """Print the registry's rows as they are: the registry owns what a backbone reports."""
    from transferlab.backbones import backbone_rows

    rows = backbone_rows()
    if args.json:
        print_json({"models": rows})
        return 0
    print(models_table(rows))
    print(SPEED_NOTE)
    print("good for:")
    for r in rows:
        print(f"  {r['name']}: {r['description']}")
    for r in rows:
        if not r.get("installed", True):
            print(f"* not installed: {r['name']}: {r.get('how_to_add') or 'see the README'}")
    return 0
