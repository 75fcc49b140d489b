"""What the prediction server predicts with: an exported ONNX model (the fast path) or a saved model directory.

:func:`open_backend` picks one. An export directory (``export.json``) is served by :class:`OnnxBackend` through the
copyable ``transferlab_runtime`` (onnxruntime, numpy, Pillow, tokenizers: no torch, so the server starts in about a
second). A saved model directory (``config.json``) is exported into a temporary folder first when that export is
exact, and otherwise served by :class:`ModelBackend` (:meth:`transferlab.model.Model.predict`, which reads the feature
cache but never writes it). Both answer :meth:`Backend.predict` in the shape of ``Model.predict``.

Nothing here imports torch or the model code at module level: the ONNX path must stay light.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from transferlab.errors import UserError

CARD_KEYS = ("strategy", "backbone", "metrics", "data_report", "trained_with", "created")
"""The model card fields of ``Backend.info`` that ``GET /model`` and the card page show."""


class Backend(Protocol):
    """A loaded classifier the server calls from ``workers`` threads at most at once."""

    task: str  # "image" | "text" | "qa"
    labels: list[str]
    info: dict[str, Any]  # the model card (CARD_KEYS) and which backend this is ("backend")
    workers: int  # predict calls that may run at the same time

    def predict(self, inputs: list[Any], top_k: int, busy: bool = False) -> list[dict[str, Any]]:
        """One entry per input, in order: ``{"input", "label", "probabilities"}`` or ``{"input", "error"}``.
        ``busy``: other calls run or wait beside this one, so it should not spread over every core."""
        ...


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_card(model_dir: Path) -> dict[str, Any]:
    """The card of the model saved in ``model_dir``: strategy, backbone, metrics and a summary of the data report
    (per-split class counts, skipped count and the first reasons; the full list can be thousands of entries)."""
    config = _read_json(model_dir / "config.json") or {}
    weights = config.get("weights", {})
    report = _read_json(model_dir / "data_report.json") or {}
    summary = {k: v for k, v in report.items() if k != "skipped"}
    if report.get("skipped"):
        summary["skipped_first"] = report["skipped"][:10]
    backbone = (config.get("backbone") or weights.get("backbone") or weights.get("encoder")
                or [m.get("backbone") for m in weights.get("members", [])] or None)
    return {"strategy": config.get("strategy", {}).get("name"), "backbone": backbone,
            "metrics": _read_json(model_dir / "metrics.json") or {}, "data_report": summary,
            "trained_with": config.get("versions", {}).get("transferlab"), "created": config.get("created")}


def _answers(reader: Any, pairs: list[Any]) -> list[dict[str, Any]]:  # noqa: ANN401
    """A reader's ``{"answer", "start", "score"}`` per (question, context) pair (saved or exported reader alike)."""
    answers = reader.answer([q for q, _ in pairs], [c for _, c in pairs])
    return [{"answer": a["answer"], "start": a["start"], "score": a["score"]} for a in answers]


class ModelBackend:
    """A saved model directory, predicted with :class:`transferlab.model.Model` (feature cache read-only)."""

    def __init__(self, model_dir: str | os.PathLike[str]) -> None:
        from transferlab.model import Model

        self.directory = Path(model_dir)
        self.model = Model.load(self.directory)
        self.task = self.model.task
        self.labels = list(self.model.classes)
        self.info = {**model_card(self.directory), "backend": "model"}
        self.workers = 1  # the feature extractors keep per-model state: one call at a time

    def predict(self, inputs: list[Any], top_k: int, busy: bool = False) -> list[dict[str, Any]]:
        """:meth:`Model.predict`; its default never writes the feature cache. A question-answering reader takes
        (question, context) pairs and answers ``{"answer", "start", "score"}`` for each."""
        if self.task == "qa":
            return _answers(self.model.predictor, inputs)
        return self.model.predict(list(inputs), top_k=top_k)


class OnnxBackend:
    """An export directory (``transferlab export``), predicted by ``transferlab_runtime`` with onnxruntime.

    Two sessions of the same graph: one on ``threads`` cores for a request that arrives alone (its latency is all that
    matters), one single-threaded that several workers share under load, where calls side by side use the cores
    better than one call split over them (a split call waits for its slowest thread at every layer; decoding and
    HTTP of the other requests then run beside it instead of between batches). One worker more than cores: while the
    others are inside the network, it decodes."""

    def __init__(self, export_dir: str | os.PathLike[str], threads: int | None = None,
                 image_formats: Sequence[str] | None = None, card: dict[str, Any] | None = None) -> None:
        import transferlab_runtime

        self.directory = Path(export_dir)
        threads = max(1, int(threads or os.cpu_count() or 1))
        # the runtime refuses other formats before decoding, as the server's header check does
        self.exported = transferlab_runtime.load(self.directory, threads=threads, image_formats=image_formats)
        self.lean = (self.exported if threads == 1 else
                     transferlab_runtime.load(self.directory, threads=1, image_formats=image_formats))
        # one worker per core runs the network while one more decodes the next batch's images beside them: measured
        # with Lite0 on 2 cores, 3 workers served ~4% more requests per second at concurrency 8 than 2 (and 4 no
        # more than 3), in alternating rounds (benchmarks/serve_bench.py)
        self.workers = min(threads + 1, 5)
        self.task = str(self.exported.task)
        self.labels = [str(x) for x in self.exported.labels]
        info = dict(self.exported.info or {})
        self.info = {**{k: info.get(k) for k in CARD_KEYS}, **(card or {}), "backend": "onnx"}

    def predict(self, inputs: list[Any], top_k: int, busy: bool = False) -> list[dict[str, Any]]:
        """The runtime's predictions (onnxruntime sessions may be run from several threads at once); a
        question-answering reader takes (question, context) pairs."""
        runner = self.lean if busy else self.exported
        if self.task == "qa":
            return _answers(runner, inputs)
        return runner.predict(list(inputs), top_k=top_k)


def _export_reason(model_dir: Path) -> str | None:
    """None when the model can be exported exactly and the runtime is installed, else why the server falls back."""
    try:
        from transferlab.deploy.export import exportable
    except ImportError as exc:
        return f"the ONNX export is not available ({exc})"
    try:
        import transferlab_runtime  # noqa: F401
    except ImportError as exc:
        return f"the exported-model runtime is not available ({exc})"
    return exportable(model_dir)


def open_backend(path: str | os.PathLike[str], threads: int | None = None, prefer: str = "auto",
                 image_formats: Sequence[str] | None = None) -> Backend:
    """The backend for ``path``: an export directory, or a saved model directory (exported on the fly into a
    temporary folder, removed at exit, when the export is exact; ``prefer="model"`` skips that). Says on stderr
    which backend serves and why."""
    d = Path(path)
    if not d.is_dir():
        raise UserError(f"{d}: not a folder (give a model folder from `transferlab train` or an export folder)")
    if (d / "export.json").is_file():
        backend: Backend = OnnxBackend(d, threads, image_formats)
        _say(f"serving the exported model in {d} with onnxruntime")
        return backend
    if not (d / "config.json").is_file():
        raise UserError(f"{d}: not a transferlab model or export folder (no config.json or export.json)")
    reason = "--backend model was asked for" if prefer == "model" else _export_reason(d)
    if reason is None:
        from transferlab.deploy.export import export_model

        tmp = Path(tempfile.mkdtemp(prefix="transferlab-serve-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        try:
            export_model(d, tmp / "export")
            backend = OnnxBackend(tmp / "export", threads, image_formats, card=model_card(d))
        except Exception as exc:  # the saved model still predicts: serve it as it is, and say why
            shutil.rmtree(tmp, ignore_errors=True)
            if prefer == "onnx":
                raise UserError(f"{d}: the ONNX export failed: {exc}") from None
            reason = f"the export failed: {type(exc).__name__}: {exc}"
        else:
            _say(f"serving {d} exported to ONNX (exact; temporary copy removed at exit) with onnxruntime")
            return backend
    if prefer == "onnx":
        raise UserError(f"{d}: cannot serve with onnxruntime: {reason}")
    backend = ModelBackend(d)
    _say(f"serving {d} with the saved model (no ONNX export: {reason})")
    return backend


def _say(message: str) -> None:
    print(f"transferlab serve: {message}", file=sys.stderr, flush=True)
