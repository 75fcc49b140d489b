"""The prediction server behind ``transferlab serve``: a FastAPI app around one :class:`~transferlab.deploy.backends.
Backend`, hardened for a machine where anything may send it anything.

Endpoints: ``GET /`` (the prediction page), ``GET /card`` (the model card page), ``GET /health``, ``GET /model`` (card
as JSON), ``GET /model/confusion_matrix.png`` and ``GET /model/compare_report`` (read from the model folder by fixed
names at start-up), ``POST /predict``, ``GET /openapi.json`` and ``GET /docs`` (a page rendered from it, no CDN).

What a request can and cannot do:

* Bytes and pixels, 413: the body is refused by its ``Content-Length`` and counted while it streams, so no request
  holds more than ``max_body_bytes``; an image over ``max_pixels`` is refused from its header, before anything is
  decoded (the backend decodes one image at a time, so this also bounds the memory decoding takes).
* What the OpenAPI schema states, 422 like any other schema violation (so an outside fuzzer sees them as rejections):
  more than ``max_files`` files, more than ``max_texts`` texts, a text over ``max_text_chars`` characters; also
  malformed or truncated multipart, invalid JSON, wrong fields, a bad ``top_k``, an image header Pillow cannot parse.
* 415: an image not in ``image_formats`` (only those Pillow plugins ever see the bytes, here and in the backend), or a
  body that is not multipart (image models) / JSON (text models). 408: a body not received within
  ``read_timeout_s``. 429: more than ``max_pending`` requests in progress. 401: a missing or wrong token.
* An input that passes these checks but cannot be used (image data corrupt or truncated behind a valid header, a text
  of whitespace only) gets an ``error`` entry in place of its label in the 200 answer, as ``transferlab predict
  --json`` shows it: one bad file never costs the others of its request their predictions.
* Every error is JSON ``{"error": "..."}``, 404 and 405 included; an unexpected exception is logged and answered 500
  (the tests show none happen).
* Nothing is written to disk: the body is read into memory and the multipart parsed there (no spooled temporary
  files), images are decoded from bytes, and the backend never writes the feature cache. No path from a request is
  ever opened: the card's files are read once, by fixed names, from the model folder.
* Concurrent requests are batched: :class:`MicroBatcher` hands everything queued (up to ``max_batch`` inputs) to one
  backend call, on the backend's few worker threads; a request alone waits for nobody and gets every core.
* A Host header that is not a loopback name is refused (400) while bound to loopback, so a web page elsewhere cannot
  reach the server through DNS rebinding; with a token, ``/predict`` and ``/model*`` need ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import html
import io
import json
import logging
import re
import socket
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transferlab.deploy.backends import CARD_KEYS, Backend
from transferlab.deploy.limits import LOOPBACK_NAMES, Limits

log = logging.getLogger("transferlab.serve")

class ApiError(Exception):
    """An answer with a 4xx status and a JSON ``{"error": message}`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


# --- response documents (for the OpenAPI schema; responses are built as plain dicts) --------------------------------
class Prediction(BaseModel):
    input: str
    label: str | None = None  # classifiers
    probabilities: dict[str, float] | None = None
    answer: str | None = None  # question answering: the answer span ("" for none), its character start in the
    start: int | None = None  # context (-1 for none) and its score among the reader's candidate spans
    score: float | None = None
    error: str | None = None


class Predictions(BaseModel):
    predictions: list[Prediction]


class ErrorDocument(BaseModel):
    error: str


class Health(BaseModel):
    status: str
    task: str
    predicted: int  # inputs predicted since start
    batches: int  # backend calls they took (concurrent requests share one)


# --- batching ---------------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    items: list[Any]
    top_k: int
    future: asyncio.Future[list[dict[str, Any]]] = field(repr=False)


class MicroBatcher:
    """Gathers concurrent prediction requests into batches for the backend.

    Each of ``workers`` worker tasks takes every queued job (up to ``max_items`` inputs; a larger job goes alone) and
    runs one ``predict(items, top_k, busy)`` in its own thread while the event loop keeps reading requests: whatever
    arrives during a call is the next batch. ``busy`` tells the backend whether the batch has the machine to itself
    (nothing else running, queued or being read): a lone request may use every core for its latency, batches under
    load share them. When other requests are still being read (``arriving``), a worker waits up to ``max_wait_s`` for
    them; a request alone never waits.
    """

    def __init__(self, predict: Callable[[list[Any], int, bool], list[dict[str, Any]]], max_items: int = 16,
                 max_wait_s: float = 0.002, workers: int = 1) -> None:
        self._predict = predict
        self.workers = max(1, int(workers))
        self.max_items = max(1, int(max_items))
        self.max_wait_s = max_wait_s
        self.arriving = 0  # requests admitted whose inputs are not queued yet
        self.running = 0  # backend calls in progress
        self.batches = 0
        self.inputs = 0
        self._queue: deque[_Job] = deque()
        self._event: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="transferlab-predict")

    async def start(self) -> None:
        self._event = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, items: list[Any], top_k: int) -> list[dict[str, Any]]:
        """The backend's entries for ``items`` (``top_k`` probabilities each), computed in some batch."""
        assert self._event is not None, "MicroBatcher.start() was not awaited"
        job = _Job(list(items), top_k, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._event.set()
        return await job.future

    def _take(self, batch: list[_Job], count: int) -> int:
        while self._queue and (not batch or count + len(self._queue[0].items) <= self.max_items):
            job = self._queue.popleft()
            if job.future.cancelled():
                continue
            batch.append(job)
            count += len(job.items)
        return count

    async def _run(self) -> None:
        assert self._event is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._event.clear()
                await self._event.wait()
            batch: list[_Job] = []
            count = self._take(batch, 0)
            deadline = loop.time() + self.max_wait_s
            while self.arriving > 0 and count < self.max_items:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._event.clear()
                try:
                    await asyncio.wait_for(self._event.wait(), left)
                except TimeoutError:
                    break
                count = self._take(batch, count)
            if not batch:
                continue
            flat = [x for job in batch for x in job.items]
            k = max(job.top_k for job in batch)
            busy = self.running > 0 or bool(self._queue) or self.arriving > 0
            self.running += 1
            try:
                results = await loop.run_in_executor(self._pool, self._predict, flat, k, busy)
                if len(results) != len(flat):
                    raise RuntimeError(f"backend returned {len(results)} entries for {len(flat)} inputs")
            except Exception as exc:  # every request of the batch gets the failure (a 500, logged)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self.running -= 1
            self.batches += 1
            self.inputs += len(flat)
            start = 0
            for job in batch:
                part = results[start:start + len(job.items)]
                start += len(job.items)
                if not job.future.done():
                    job.future.set_result([_top(entry, job.top_k) for entry in part])


def _top(entry: dict[str, Any], k: int) -> dict[str, Any]:
    probs = entry.get("probabilities")
    if probs is None or len(probs) <= k:
        return entry
    return {**entry, "probabilities": dict(list(probs.items())[:k])}  # already sorted, most likely first


# --- reading requests -------------------------------------------------------------------------------------------------
async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, in memory: refused by its declared length, counted while it streams, and timed out."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
        if length > limits.max_body_bytes:
            raise ApiError(413, f"request body of {length:,} bytes exceeds the limit of {limits.max_body_bytes:,}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.read_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise ApiError(413, f"request body exceeds the limit of {limits.max_body_bytes:,} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"request body not received within {limits.read_timeout_s:g} s") from None
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _display_name(filename: str | None, index: int) -> str:
    """What a file is called in answers: the last component of the name the client sent, printable, at most 200
    characters (only ever shown, never opened)."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:200].strip()
    return name or f"file{index + 1}"


def parse_multipart(body: bytes, content_type: str, limits: Limits) -> list[tuple[str, bytes]]:
    """(display name, bytes) of each ``file`` part of a multipart/form-data body held in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(422, "multipart/form-data without a boundary")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    state: dict[str, bool] = {"ended": False}

    def on_part_begin() -> None:
        if len(parts) >= limits.max_files:
            raise ApiError(422, f"more than {limits.max_files} files in one request")
        parts.append({"headers": {}, "data": []})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].append(data[start:end])

    def on_end() -> None:
        state["ended"] = True

    try:
        parser = MultipartParser(boundary, {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_part_data": on_part_data, "on_end": on_end})
        parser.write(body)
        parser.finalize()
    except ValueError as exc:  # python-multipart's errors (a bad boundary, a malformed part) are ValueErrors
        raise ApiError(422, f"malformed multipart body ({exc})") from None
    if not state["ended"]:
        raise ApiError(422, "truncated multipart body (the closing boundary is missing)")
    files = []
    for i, part in enumerate(parts):
        disposition = part["headers"].get(b"content-disposition")
        if disposition is None:
            raise ApiError(422, "a multipart part has no Content-Disposition header")
        kind, opts = parse_options_header(disposition)
        name = opts.get(b"name", b"").decode("latin-1")
        if kind != b"form-data" or name != "file":
            raise ApiError(422, f"unexpected form field {name[:60]!r}: send each image as a 'file' part")
        filename = opts.get(b"filename")
        files.append((_display_name(filename.decode("utf-8", "replace") if filename else None, i),
                      b"".join(part["data"])))
    if not files:
        raise ApiError(422, "no 'file' part: send one or more images as multipart 'file' fields")
    return files


@functools.cache
def _ignore_pillow_bomb_warning() -> None:
    """Once per process: a filter, not a catch_warnings() per request (requests run in threads, and catch_warnings
    restores the whole process's filters when it ends)."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def check_image(name: str, data: bytes, limits: Limits) -> int:
    """Read only the header of ``data``, with only the whitelisted format plugins; its pixel count, or ApiError.
    The backend decodes one image at a time, so this per-image limit also bounds the memory decoding takes."""
    from PIL import Image, UnidentifiedImageError

    _ignore_pillow_bomb_warning()  # our own, lower limit is checked below
    if not data:
        raise ApiError(422, f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data), formats=list(limits.image_formats)) as img:
            width, height = img.size
    except UnidentifiedImageError:
        raise ApiError(415, f"{name}: not an image in an accepted format "
                            f"({', '.join(limits.image_formats)})") from None
    except Image.DecompressionBombError:
        raise ApiError(413, f"{name}: image too large (refused as a decompression bomb)") from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ApiError(422, f"{name}: unreadable image header ({type(exc).__name__})") from None
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ApiError(413, f"{name}: {width}x{height} = {pixels:,} pixels exceeds the limit of "
                            f"{limits.max_pixels:,}")
    if pixels == 0:
        raise ApiError(422, f"{name}: image has zero width or height")
    return pixels


def parse_texts(body: bytes, limits: Limits) -> list[str]:
    """The ``texts`` of a JSON body ``{"texts": [str, ...]}``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(422, 'body is not valid JSON; send {"texts": ["...", ...]}') from None
    if not isinstance(doc, dict) or set(doc) != {"texts"}:
        raise ApiError(422, 'the JSON body must be an object with one key, "texts": {"texts": ["...", ...]}')
    texts = doc["texts"]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ApiError(422, '"texts" must be a non-empty list of strings')
    if len(texts) > limits.max_texts:
        raise ApiError(422, f"{len(texts)} texts in one request exceeds the limit of {limits.max_texts}")
    for i, t in enumerate(texts):
        if len(t) > limits.max_text_chars:
            raise ApiError(422, f"text {i + 1} has {len(t):,} characters; the limit is {limits.max_text_chars:,}")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # JSON allows lone surrogates ("\ud800"); no tokenizer or answer can hold them
            raise ApiError(422, f"text {i + 1} is not valid Unicode (a lone surrogate)") from None
    return texts


def parse_questions(body: bytes, limits: Limits) -> list[tuple[str, str]]:
    """(question, context) pairs of a JSON body ``{"context": str, "questions": [str, ...]}`` (question answering:
    one passage, many questions, answered in one batch)."""
    usage = '{"context": "a passage", "questions": ["...", ...]}'
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(422, f"body is not valid JSON; send {usage}") from None
    if not isinstance(doc, dict) or set(doc) != {"context", "questions"}:
        raise ApiError(422, f'the JSON body must be an object with the keys "context" and "questions": {usage}')
    context, questions = doc["context"], doc["questions"]
    if not isinstance(context, str) or not context.strip():
        raise ApiError(422, '"context" must be a non-empty string (the passage the answers are cut from)')
    if not isinstance(questions, list) or not questions or not all(isinstance(q, str) for q in questions):
        raise ApiError(422, '"questions" must be a non-empty list of strings')
    if len(questions) > limits.max_texts:
        raise ApiError(422, f"{len(questions)} questions in one request exceeds the limit of {limits.max_texts}")
    if len(context) > limits.max_text_chars:
        raise ApiError(422, f"the context has {len(context):,} characters; the limit is {limits.max_text_chars:,}")
    for i, q in enumerate(questions):
        if not q.strip():
            raise ApiError(422, f"question {i + 1} is empty")
        if len(q) > limits.max_text_chars:
            raise ApiError(422, f"question {i + 1} has {len(q):,} characters; the limit is {limits.max_text_chars:,}")
    for what, t in (("the context", context), *((f"question {i + 1}", q) for i, q in enumerate(questions))):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, f"{what} is not valid Unicode (a lone surrogate)") from None
    return [(q, context) for q in questions]


# --- the app ---------------------------------------------------------------------------------------------------------
def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Guard:
    """Plain ASGI middleware: refuses Host headers outside ``allowed_hosts`` (a page elsewhere reaching a loopback
    server through DNS rebinding sends its own name), and adds headers that keep browsers from sniffing types or
    framing the pages."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str] | None) -> None:
        self.app, self.allowed_hosts = app, allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts is not None:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]
            if name.lower() not in self.allowed_hosts:
                await _error(400, f"Host {name[:100]!r} is not one this server answers to "
                                  f"({', '.join(sorted(self.allowed_hosts))})")(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff"),
                                      (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _page(name: str) -> bytes:
    return resources.files("transferlab.deploy").joinpath("web", name).read_bytes()


def model_assets(directory: str | Path | None) -> dict[str, bytes]:
    """The card page's files, read once from the model folder by fixed names: its confusion matrix, and for the
    winner of ``transferlab compare`` (``OUT/best/``) the comparison's ``OUT/report.html``."""
    if directory is None:
        return {}
    d = Path(directory).resolve()
    out = {}
    matrix = d / "confusion_matrix.png"
    if matrix.is_file():
        out["confusion_matrix.png"] = matrix.read_bytes()
    report = d.parent / "report.html"
    if d.name == "best" and report.is_file() and (d.parent / "leaderboard.json").is_file():
        out["compare_report.html"] = report.read_bytes()
    return out


def _docs_page(schema: dict[str, Any]) -> str:
    rows = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            codes = ", ".join(sorted(op.get("responses", {})))
            rows.append(f"<tr><td><code>{html.escape(method.upper())} {html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}<br><small>{html.escape(op.get('description', ''))}"
                        f"</small></td><td>{html.escape(codes)}</td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>transferlab serve API</title><style>body{font:14px system-ui;"
            "margin:2em}td{border-top:1px solid #ddd;padding:6px;vertical-align:top}small{color:#555}</style>"
            f"<h1>{html.escape(schema['info']['title'])}</h1><p>The machine-readable schema: "
            "<a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p><table><tr><th>endpoint</th>"
            "<th>what it does</th><th>statuses</th></tr>" + "".join(rows) + "</table>")


def _request_body_schema(task: str, limits: Limits) -> dict[str, Any]:
    if task == "image":
        return {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"], "additionalProperties": False,
            "properties": {"file": {"type": "array", "minItems": 1, "maxItems": limits.max_files,
                                    "items": {"type": "string", "format": "binary"},
                                    "description": f"image files ({', '.join(limits.image_formats)})"}}}}}
    if task == "qa":
        return {"application/json": {"schema": {
            "type": "object", "required": ["context", "questions"], "additionalProperties": False,
            "properties": {"context": {"type": "string", "minLength": 1, "maxLength": limits.max_text_chars,
                                       "description": "the passage answers are cut from"},
                           "questions": {"type": "array", "minItems": 1, "maxItems": limits.max_texts,
                                         "items": {"type": "string", "minLength": 1,
                                                   "maxLength": limits.max_text_chars}}}}}}
    return {"application/json": {"schema": {
        "type": "object", "required": ["texts"], "additionalProperties": False,
        "properties": {"texts": {"type": "array", "minItems": 1, "maxItems": limits.max_texts,
                                 "items": {"type": "string", "maxLength": limits.max_text_chars}}}}}}


def create_app(backend: Backend, *, token: str | None = None, limits: Limits | None = None,
               model_dir: str | Path | None = None, allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES,
               max_batch: int = 16, max_wait_ms: float = 2.0) -> FastAPI:
    """The server for ``backend``. ``model_dir`` is where the card's files are read from (once, here);
    ``allowed_hosts`` are the Host names answered (None: any, for a server bound to every address on purpose)."""
    limits = limits or Limits()
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # malformed parts are answered 422, not logged
    batcher = MicroBatcher(backend.predict, max_items=max_batch, max_wait_s=max_wait_ms / 1000,
                           workers=getattr(backend, "workers", 1))
    assets = model_assets(model_dir)
    pages = {"index": _page("index.html"), "card": _page("card.html")}
    expected = token.encode() if token else None
    active = {"requests": 0}
    error_responses: dict[int | str, dict[str, Any]] = (
        {401: {"model": ErrorDocument, "description": "missing or wrong bearer token"}} if token else {})

    async def lifespan(app: FastAPI) -> Any:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="transferlab serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"Predictions of a transferlab {backend.task} model ({', '.join(backend.labels[:20])}).")
    app.state.batcher, app.state.limits, app.state.backend = batcher, limits, backend

    bearer = HTTPBearer(auto_error=False, description="the --token given to transferlab serve")

    async def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if expected is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if credentials is None or not hmac.compare_digest(given, expected):
            raise ApiError(401, "missing or wrong bearer token (send Authorization: Bearer TOKEN)",
                           headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)] if expected is not None else []

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                             for e in exc.errors()[:5])
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal server error (logged on the server)")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(pages["index"], media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/card", include_in_schema=False)
    async def card() -> Response:
        return Response(pages["card"], media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return Response(_docs_page(app.openapi()), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/health", response_model=Health, summary="liveness and counters: always open, even with a token")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "task": backend.task, "predicted": batcher.inputs, "batches": batcher.batches}

    card_doc = {"task": backend.task, "labels": backend.labels, **{k: backend.info.get(k) for k in CARD_KEYS},
                "backend": backend.info.get("backend"), "limits": asdict(limits),
                "confusion_matrix": "confusion_matrix.png" in assets, "compare_report": "compare_report.html" in assets}
    card_doc = json.loads(json.dumps(card_doc, default=str))  # what the route returns must be JSON already

    @app.get("/model", dependencies=guarded, responses=error_responses,
             summary="the model card: labels, strategy, backbone, metrics, data report summary, limits")
    async def model() -> dict[str, Any]:
        return card_doc

    @app.get("/model/confusion_matrix.png", dependencies=guarded, summary="the confusion matrix of the evaluation",
             responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorDocument,
                                                                  "description": "the model folder has none"},
                        **error_responses}, response_class=Response)
    async def confusion_matrix() -> Response:
        if "confusion_matrix.png" not in assets:
            raise ApiError(404, "this model folder has no confusion_matrix.png")
        return Response(assets["confusion_matrix.png"], media_type="image/png")

    @app.get("/model/compare_report", dependencies=guarded, response_class=Response,
             summary="the report of `transferlab compare`, when the model is its winner (OUT/best/)",
             responses={200: {"content": {"text/html": {}}}, 404: {"model": ErrorDocument,
                                                                   "description": "not from compare"},
                        **error_responses})
    async def compare_report() -> Response:
        if "compare_report.html" not in assets:
            raise ApiError(404, "this model is not the winner of a `transferlab compare` run (no report)")
        return Response(assets["compare_report.html"], media_type="text/html; charset=utf-8",
                         headers={"Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
                                                             "style-src 'unsafe-inline'"})

    kind = {"image": "image files as multipart 'file' parts",
            "qa": 'JSON {"context": "...", "questions": [...]}'}.get(backend.task, 'JSON {"texts": [...]}')
    predict_responses: dict[int | str, dict[str, Any]] = {
        200: {"model": Predictions, "description": "one entry per input, in order (per-file errors included)"},
        **error_responses,
        400: {"model": ErrorDocument, "description": "malformed request"},
        408: {"model": ErrorDocument, "description": "body not received in time"},
        413: {"model": ErrorDocument, "description": "body bytes or image pixels over the limit"},
        415: {"model": ErrorDocument, "description": "unsupported content type or image format"},
        422: {"model": ErrorDocument, "description": "malformed body, or more files, texts or characters than allowed"},
        429: {"model": ErrorDocument, "description": "too many requests in progress"},
    }

    @app.post("/predict", dependencies=guarded, responses=predict_responses,
              summary=(f"answer questions about a passage: {kind}" if backend.task == "qa"
                       else f"predict the classes of {kind}"),
              description=(f"Takes {kind}; answers each question with a span of the context (top_k is ignored)."
                           if backend.task == "qa" else
                           f"Takes {kind}; answers the top_k most likely labels of each input."),
              openapi_extra={"requestBody": {"required": True, "content": _request_body_schema(backend.task,
                                                                                                  limits)}})
    async def predict(request: Request, top_k: int = Query(3, ge=1, le=1000, description="labels per input")
                      ) -> JSONResponse:
        if active["requests"] >= limits.max_pending:
            raise ApiError(429, "too many requests in progress; retry shortly", headers={"Retry-After": "1"})
        active["requests"] += 1
        batcher.arriving += 1
        arriving = True
        try:
            media = _media_type(request.headers.get("content-type", ""))
            wanted = "multipart/form-data" if backend.task == "image" else "application/json"
            if media != wanted:
                raise ApiError(415, f"this {backend.task} model takes {kind} (Content-Type {wanted}), "
                                    f"not {media or 'no Content-Type'}")
            body = await read_body(request, limits)
            if backend.task == "image":
                files = parse_multipart(body, request.headers["content-type"], limits)
                del body
                for name, data in files:
                    check_image(name, data, limits)
                names, items = [n for n, _ in files], [d for _, d in files]
            elif backend.task == "qa":
                items = parse_questions(body, limits)
                names = [q for q, _ in items]
            else:
                items = parse_texts(body, limits)
                names = items
            k = max(1, min(top_k, len(backend.labels)))
            batcher.arriving -= 1
            arriving = False
            entries = await batcher.submit(items, k)
        finally:
            active["requests"] -= 1
            if arriving:
                batcher.arriving -= 1
        predictions = [{**e, "input": str(name)} for name, e in zip(names, entries, strict=True)]
        return JSONResponse({"predictions": predictions})

    app.add_middleware(_Guard, allowed_hosts=allowed_hosts)
    return app


def serve(app: FastAPI, sock: socket.socket, log_level: str = "warning", access_log: bool = False) -> None:
    """Run ``app`` with one uvicorn worker on an already bound socket (so a taken port is a clear error before
    anything starts, and port 0 works). Returns when interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, workers=1, lifespan="on",
                            timeout_keep_alive=5, timeout_graceful_shutdown=5, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
