"""``transferlab serve``: a local prediction server and web page for a saved or exported model."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from transferlab.cli._common import positive_int
from transferlab.errors import UserError

HELP = "serve a model over HTTP: a prediction API, a web page and the model card"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``serve``."""
    from transferlab.deploy.limits import IMAGE_FORMATS, Limits  # standard library only

    d = Limits()
    p = subparsers.add_parser("serve", help=HELP, description=(
        "Serve DIR (a model folder from `transferlab train`, or an export folder from `transferlab export`) at "
        "http://HOST:PORT/: a web page to try it, /card with its metrics, and the API: POST /predict (multipart "
        "'file' parts for images, JSON {\"texts\": [...]} for texts, JSON {\"context\": \"...\", \"questions\": [...]} "
        "for a question-answering reader from `transferlab qa train`), GET /health, GET /model, /openapi.json. A "
        "model folder that exports exactly is served through ONNX Runtime (exported into a temporary folder)."))
    p.add_argument("model_dir", metavar="DIR")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on /predict and /model "
                   "(default $TRANSFERLAB_TOKEN; the variable keeps it out of the process list)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="onnxruntime intra-op threads (default $TRANSFERLAB_THREADS, else every core)")
    p.add_argument("--backend", choices=("auto", "onnx", "model"), default="auto",
                   help="onnx: require the exact ONNX export; model: the saved model as is; auto (default): onnx "
                        "when exact, else model")
    p.add_argument("--max-body-mb", type=_positive_float, default=d.max_body_bytes / 2**20,
                   help=f"largest request body in MiB (default {d.max_body_bytes / 2**20:g}); larger: 413")
    p.add_argument("--max-files", type=positive_int, default=d.max_files,
                   help=f"images per request (default {d.max_files}); more: 413")
    p.add_argument("--max-megapixels", type=_positive_float, default=d.max_pixels / 1e6,
                   help=f"largest image, from its header, before decoding (default {d.max_pixels / 1e6:g}); "
                        "larger: 413")
    p.add_argument("--max-texts", type=positive_int, default=d.max_texts,
                   help=f"texts (or questions) per request (default {d.max_texts}); more: 422")
    p.add_argument("--max-text-chars", type=positive_int, default=d.max_text_chars,
                   help=f"longest text (or passage) in characters (default {d.max_text_chars}); longer: 422")
    p.add_argument("--max-batch", type=positive_int, default=16,
                   help="inputs of concurrent requests predicted together in one call (default 16)")
    p.add_argument("--access-log", action="store_true", help="log every request on stderr")
    p.set_defaults(image_formats=IMAGE_FORMATS)


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or a UserError that says why not (taken port, unknown host)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0-65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # connections made before uvicorn starts wait in the backlog instead of being refused
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None
    return sock


def _allowed_hosts(host: str) -> frozenset[str] | None:
    from transferlab.deploy.limits import LOOPBACK_NAMES

    if host in ("0.0.0.0", "::", ""):
        return None  # every address on purpose: any Host
    return LOOPBACK_NAMES | {host.lower(), f"[{host.lower()}]" if ":" in host else host.lower()}


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit 0 then, 2 for a folder that cannot be served or a port that cannot be used."""
    threads = args.threads or int(os.environ.get("TRANSFERLAB_THREADS", "0") or 0) or os.cpu_count() or 1
    # before onnxruntime (and torch, for a saved model) are imported: one pool of `threads`, no oversubscription
    os.environ["TRANSFERLAB_THREADS"] = str(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    from transferlab._torch import cap_blas_threads

    cap_blas_threads()  # the BLAS libraries already loaded read those variables no more
    token = args.token if args.token is not None else os.environ.get("TRANSFERLAB_TOKEN") or None
    if token is not None and not token.strip():
        raise UserError("--token is empty")
    model_dir = Path(args.model_dir).resolve()
    if not model_dir.is_dir():
        raise UserError(f"{args.model_dir}: no such folder")

    from transferlab.deploy.backends import open_backend
    from transferlab.deploy.limits import Limits
    from transferlab.deploy.server import create_app, serve

    limits = Limits(max_body_bytes=int(args.max_body_mb * 2**20), max_files=args.max_files,
                    max_pixels=int(args.max_megapixels * 1e6),
                    max_texts=args.max_texts, max_text_chars=args.max_text_chars,
                    image_formats=tuple(args.image_formats))
    sock = _bind(args.host, args.port)
    signal.signal(signal.SIGTERM, _stop)
    try:
        backend = open_backend(model_dir, threads=threads, prefer=args.backend, image_formats=limits.image_formats)
        app = create_app(backend, token=token, limits=limits, model_dir=model_dir,
                         allowed_hosts=_allowed_hosts(args.host), max_batch=args.max_batch)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if args.host in ("0.0.0.0", "::") and token is None:
            print("transferlab serve: warning: listening on every address without --token; anyone who can reach "
                  "this machine can use the model", file=sys.stderr)
        print(f"transferlab serve: {backend.task} model at http://{shown}:{port}/  (API: /predict, /health, /model; "
              f"schema: /openapi.json; Ctrl-C stops)", flush=True)
        serve(app, sock, access_log=args.access_log, log_level="info" if args.access_log else "warning")
    except (KeyboardInterrupt, _Stopped):  # uvicorn shut down gracefully, then re-raised the signal: a normal stop
        pass
    finally:
        sock.close()
    return 0


class _Stopped(Exception):
    """SIGTERM, re-raised by uvicorn after its graceful shutdown: ends ``run`` normally (temporary export removed)."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped
