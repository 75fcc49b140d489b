"""``transferlab strategies``: every registered strategy, its modality, summary and default parameters."""

from __future__ import annotations

import argparse
from typing import Any

from transferlab.cli._common import print_json

HELP = "the strategies and their parameters"


def add_parser(subparsers: Any) -> None:
    """Register ``strategies``."""
    p = subparsers.add_parser("strategies", help=HELP, description="Every strategy with its parameters and their "
                              "defaults; with NAME, that strategy's whole documentation (how it trains, what each "
                              "parameter does, rules such as the fine-tuning schedule).")
    p.add_argument("name", nargs="?", help="one strategy to explain in full, e.g. finetune")
    p.add_argument("--json", action="store_true", help='print {"strategies": [...]} (with NAME: that strategy, '
                   'with its "doc") as JSON on stdout')


def run(args: argparse.Namespace) -> int:
    """List the strategies, each followed by its parameters with their defaults (what --param can set)."""
    import inspect

    from transferlab.errors import UserError
    from transferlab.strategies import get_strategy_class, strategy_names

    if args.name:
        if args.name not in strategy_names():
            raise UserError(f"no strategy {args.name!r}; one of: {', '.join(strategy_names())}")
        cls = get_strategy_class(args.name)
        params = cls().get_params()
        if args.json:
            print_json({"name": args.name, "modality": cls.modality, "summary": cls.summary, "params": params,
                        "doc": inspect.cleandoc(cls.__doc__ or "")})
            return 0
        print(f"{args.name} [{cls.modality}]: {cls.summary}\n")
        print(inspect.cleandoc(cls.__doc__ or ""))
        print("\ndefaults: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        return 0
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
