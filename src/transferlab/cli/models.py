"""``transferlab models``: every registered backbone, image and text, in one table; ``--measure`` times them here."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from transferlab.cli._common import print_json

HELP = "the pretrained backbones available offline, their size and speed (--measure: on this machine)"

SPEED_NOTE = ("items/s: images per second for image backbones (frozen feature extraction, ONNX Runtime,\n"
              "  batch 32), sentences per second for text encoders (19-word sentences, cold cache).\n"
              "speed from: 'here' = measured on this CPU by `transferlab models --measure`; 'project' = on the\n"
              "  project's 2 CPU cores (benchmarks/extraction_speed.py, benchmarks/text_encoder_speed.py), for a\n"
              "  text encoder on the path this CPU takes (bf16 with bf16 matrix units, else f32); - not measured")
SOURCE_SHORT = {"measured here": "here", "project, bf16": "project bf16", "project, float32": "project f32",
                "project": "project", "not measured": "-"}


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def models_table(rows: list[dict[str, Any]]) -> str:
    """One line per backbone; what does not apply (input size and ImageNet accuracy for text) shows as -."""
    width = max([len("name"), *(len(r["name"]) for r in rows)]) + 2
    lines = [f"{'name':<{width}}{'modality':<10}{'params':>8}{'MB':>7}{'features':>10}{'input':>7}"
             f"{'ImageNet top-1':>16}{'items/s':>9}  speed from"]
    for r in rows:
        name = r["name"] if r.get("installed", True) else r["name"] + "*"
        lines.append(f"{name:<{width}}{r['modality']:<10}{_fmt(r['params_millions'], '.2f', 'M'):>8}"
                     f"{_fmt(r.get('size_mb'), '.1f'):>7}"
                     f"{_fmt(r['feature_dim'], 'd'):>10}{_fmt(r['input_size'], 'd', 'px'):>7}"
                     f"{_fmt(r['imagenet_top1'], '.1f', '%'):>16}{_fmt(r['items_per_second'], '.0f'):>9}"
                     f"  {SOURCE_SHORT.get(r.get('speed_source', ''), '-')}")
    return "\n".join(lines)


def add_parser(subparsers: Any) -> None:
    """Register ``models``."""
    p = subparsers.add_parser(
        "models", help=HELP, description=HELP + ".",
        epilog="Examples:\n  transferlab models\n  transferlab models --measure               # every installed "
               "backbone, ~1 min\n  transferlab models --measure minilm mpnet  # only these\n\n--measure times each "
               "backbone on this machine (the model loads first, untimed) and keeps the figures in the feature cache "
               "folder, so later listings show them ('speed from: here').",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help='print {"models": [...]}, one object per backbone, as JSON')
    p.add_argument("--measure", nargs="*", metavar="NAME", default=None,
                   help="time these backbones (none named: every installed one) on this machine now and show and "
                        "keep those speeds")


def _measure(names: list[str]) -> int:
    """Time ``names`` (every installed backbone when empty) here, record the speeds; 0, or 2 on a bad name."""
    from transferlab.backbones import get_backbone, list_backbones
    from transferlab.benchmarks_data import record_speeds_here
    from transferlab.errors import UserError
    from transferlab.features.speed import measure_items_per_second

    if names:
        specs = []
        for name in dict.fromkeys(names):
            try:
                specs.append(get_backbone(name))
            except UserError as e:
                print(f"transferlab: error: {e}", file=sys.stderr)
                return 2
        missing = [s.name for s in specs if not s.is_installed()]
        if missing:
            print(f"transferlab: error: not installed: {', '.join(missing)} (`transferlab models` says how to add "
                  "it)", file=sys.stderr)
            return 2
    else:
        specs = [s for s in list_backbones() if s.is_installed()]
    speeds = {}
    for i, spec in enumerate(specs, 1):
        unit = "images" if spec.modality == "image" else "sentences"
        print(f"measuring {spec.name} ({i}/{len(specs)}) ...", end="", file=sys.stderr, flush=True)
        speeds[spec.name] = measure_items_per_second(spec.name)
        print(f" {speeds[spec.name]:.0f} {unit}/s", file=sys.stderr, flush=True)
    path = record_speeds_here(speeds)
    print(f"kept in {path}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the registry's rows as they are: the registry owns what a backbone reports."""
    from transferlab.backbones import backbone_rows

    if args.measure is not None:
        code = _measure(args.measure)
        if code:
            return code
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
