"""``transferlab example-data``: a small labelled dataset to try the other commands on, offline."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "write a small labelled dataset shipped in an installed package"


def add_parser(subparsers: Any) -> None:
    """Register ``example-data``."""
    p = subparsers.add_parser("example-data", help=HELP)
    p.add_argument("name", choices=["digits"], help="digits: scikit-learn's handwritten digits, 40 per class")
    p.add_argument("--out", required=True, help="folder to write class folders into")


def run(args: argparse.Namespace) -> int:
    """Write the dataset and say where."""
    from transferlab.examples import write_example

    root = write_example(args.name, args.out)
    print(f"wrote {args.name} to {root}/ (one folder per class)")
    return 0
