"""``transferlab strategies``: every registered strategy, its modality, summary and default parameters."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import print_json

HELP = "the strategies and their parameters"


def add_parser(subparsers: Any) -> None:
    """Register ``strategies``."""
    p = subparsers.add_parser("strategies", help=HELP)
    p.add_argument("--json", action="store_true", help='print {"strategies": [...]} as JSON on stdout')


def run(args: argparse.Namespace) -> int:
    """List the strategies, each followed by its parameters with their defaults (what --param can set)."""
    from transferlab.strategies import get_strategy_class, strategy_names

    rows = []
    for name in strategy_names():
        cls = get_strategy_class(name)
        rows.append({"name": name, "modality": cls.modality, "summary": cls.summary, "params": cls().get_params()})
    if args.json:
        print_json({"strategies": rows})
        return 0
    width = max(len(r["name"]) for r in rows) + 2
    for r in rows:
        print(f"{r['name']:<{width}}[{r['modality']}] {r['summary']}")
        print(" " * width + ", ".join(f"{k}={v}" for k, v in r["params"].items()))
    return 0
