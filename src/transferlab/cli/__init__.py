"""The ``transferlab`` command line: a thin layer over the Python API.

Everything a person reads also exists for scripts: ``--json`` prints one JSON document on stdout (progress and logs
go to stderr) and commands that train write their results into ``--out DIR``. Exit codes: 0 success, 2 bad input or
usage (one clear line on stderr, no traceback), 1 anything else, 130 interrupted.

Each command is one module of this package exposing ``HELP`` (its one-line summary), ``add_parser(subparsers)``
and ``run(args) -> int``; adding a command is one module plus one line in :data:`COMMANDS`. Only the module of the
command being run is imported (``transferlab --help`` imports each for its summary but builds none of their parsers),
so starting up costs no numpy, torch or data code until a command needs it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from transferlab.errors import UserError

# command -> module; the order is the order of `transferlab --help`
COMMANDS = {
    "train": "transferlab.cli.train",
    "predict": "transferlab.cli.predict",
    "evaluate": "transferlab.cli.evaluate",
    "export": "transferlab.cli.export",
    "compare": "transferlab.cli.compare",
    "rank": "transferlab.cli.rank",
    "index": "transferlab.cli.index",
    "search": "transferlab.cli.search",
    "zeroshot": "transferlab.cli.zeroshot",
    "audit": "transferlab.cli.audit",
    "pretrain-text": "transferlab.cli.pretrain_text",
    "qa": "transferlab.cli.qa",
    "serve": "transferlab.cli.serve",
    "example-data": "transferlab.cli.example_data",
    "models": "transferlab.cli.models",
    "strategies": "transferlab.cli.strategies",
}

# options before the command; (flags, keyword arguments of add_argument)
GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--cache-dir",), {"default": None,
                        "help": "feature cache folder (default $TRANSFERLAB_CACHE or ~/.cache/transferlab)"}),
    (("--quiet",), {"action": "store_true", "help": "no progress bars or logs on stderr"}),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        raise UserError(message)


def command_module(name: str) -> ModuleType:
    """The module that implements command ``name`` (imported on first use)."""
    return importlib.import_module(COMMANDS[name])


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named on the command line, found by skipping the global options (and their values) the way
    argparse does, including unambiguous abbreviations; None when top-level help comes first or there is none."""
    takes_value = [flags for flags, kw in GLOBAL_OPTIONS if kw.get("action") not in ("store_true", "store_false")]
    long_options = ["--help", *(f for flags, _ in GLOBAL_OPTIONS for f in flags)]
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not token.startswith("-") or token == "-":
            return token
        name = token.split("=", 1)[0]
        matches = [o for o in long_options if o.startswith(name)] if name.startswith("--") else [name]
        option = matches[0] if len(matches) == 1 else name
        if option in ("-h", "--help"):
            return None
        if "=" not in token and any(option in flags for flags in takes_value):
            i += 1
        i += 1
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser. Given a known ``command``, only that command's parser is built (the one that will run); without
    one, every command is listed by its one-line summary, which is all that top-level help and usage errors show."""
    parser = _Parser(prog="transferlab", description=(
        "Transfer learning for small labelled datasets, offline, on a CPU. Bring a folder of images per class; "
        "transferlab adapts a pretrained network to it, evaluates it and saves a model you can predict with."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with:  transferlab train photos/ --out mymodel/   then   transferlab predict mymodel/ img.jpg")
    for flags, kwargs in GLOBAL_OPTIONS:
        parser.add_argument(*flags, **kwargs)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    if command in COMMANDS:
        command_module(command).add_parser(sub)
    else:
        for name in COMMANDS:
            p = sub.add_parser(name, help=command_module(name).HELP, add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_word(argv)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is not None and command != args.command:  # the word was not found ahead: build its parser now
        parser = build_parser(args.command)
        args = parser.parse_args(argv)
    return parser, args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; the console script ``transferlab`` and ``python -m
    transferlab.cli`` both end here."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        try:
            parser, args = _parse(argv)
        except SystemExit as exc:  # --help: argparse printed it and wants to stop
            return exc.code if isinstance(exc.code, int) else 0
        if args.command is None:
            parser.print_help()
            return 2
        from transferlab import runtime
        from transferlab._torch import cap_blas_threads

        cap_blas_threads()
        runtime.configure(cache_directory=args.cache_dir, progress=not args.quiet)
        if args.quiet:
            os.environ["TRANSFERLAB_QUIET"] = "1"
        return command_module(args.command).run(args)
    except UserError as exc:
        print(f"transferlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("TRANSFERLAB_DEBUG"):
            raise
        print(f"transferlab: unexpected error: {type(exc).__name__}: {exc} "
              "(set TRANSFERLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
