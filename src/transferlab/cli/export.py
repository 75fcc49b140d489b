"""``transferlab export``: a saved model as one ONNX graph plus a copyable runtime (see :mod:`transferlab.deploy`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from transferlab.cli._common import print_json

HELP = "export a saved model to ONNX (preprocessing and head inside) with a runtime that needs no transferlab"


def add_parser(subparsers: Any) -> None:
    """Register ``export``."""
    p = subparsers.add_parser(
        "export", help=HELP, description=HELP + ". The export folder holds model.onnx (uint8 pixels or token ids in, "
        "class probabilities out), export.json, labels.json, the tokenizer or n-gram vocabulary, and "
        "transferlab_runtime.py: `from transferlab_runtime import load; load(FOLDER).predict([...])` with only "
        "onnxruntime, numpy, Pillow and tokenizers installed. Models that cannot be exported exactly (k-NN heads, "
        "side-feature columns, word-vector models) are refused with the reason.")
    p.add_argument("model_dir", metavar="DIR", help="a model folder written by `transferlab train` or `compare`")
    p.add_argument("--out", required=True, metavar="EXPORT_DIR", help="folder to write (replaced atomically)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from transferlab.deploy.export import export_model

    out = export_model(args.model_dir, args.out)
    files = sorted(p.name for p in out.iterdir())
    size_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    if args.json:
        print_json({"export_dir": str(out), "files": files, "size_mb": round(size_mb, 2)})
    else:
        print(f"exported {args.model_dir} -> {out} ({size_mb:.1f} MB): {', '.join(files)}", file=sys.stderr)
        print(f"use: python -c \"import sys; sys.path.insert(0, '{out}'); from transferlab_runtime import load; "
              f"print(load('{out}').predict([...]))\"", file=sys.stderr)
    return 0
