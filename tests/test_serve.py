"""``transferlab serve`` as a client meets it: the real command in a subprocess, answering over TCP.

Two servers run for the whole module, both with a token and small limits: an image model (headless on digits, served
through its ONNX export) and a text model (text_headless on MiniLM). Their answers are checked against the saved
model's own predictions; every limit is hit; more than 200 malformed requests and an outside fuzzer (schemathesis,
against the served OpenAPI schema) must get no 5xx, leave the server alive and bounded in memory, and leave the
feature cache, the model folder and the server's temporary folder as they were.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

TOKEN = "test-token-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMITS = ["--max-body-mb", "2", "--max-files", "4", "--max-megapixels", "4", "--max-texts", "8",
          "--max-text-chars", "500"]


# --- a served model ---------------------------------------------------------------------------------------------------
class Served:
    """``transferlab serve DIR --port 0`` in a subprocess with its own TMPDIR; ``port`` once /health answers."""

    def __init__(self, model_dir: Path, cache: Path, tmp: Path, *args: str, token: str | None = TOKEN) -> None:
        self.model_dir, self.cache, self.tmpdir = model_dir, cache, tmp / "server-tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = tmp / "server.err"
        env = {**os.environ, "TRANSFERLAB_CACHE": str(cache), "TMPDIR": str(self.tmpdir), "TRANSFERLAB_QUIET": "1",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("TRANSFERLAB_TOKEN", None)
        if token is not None:
            env["TRANSFERLAB_TOKEN"] = token
        self._err = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "transferlab.cli", "serve", str(model_dir), "--port", "0",
                                      *args], stdout=subprocess.PIPE, stderr=self._err, text=True, env=env)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.stop()
            raise AssertionError(f"no URL printed: {line!r}; stderr: {self.stderr()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"server did not come up: {self.stderr()}") from None
                time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, Any]:
        status, head, data = self.request(method, path, body, headers)
        assert head.get("content-type", "").startswith("application/json"), (status, head, data[:200])
        return status, json.loads(data)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        return self.proc.returncode


def multipart(files: list[tuple[str, bytes]], field: str = "file", boundary: str = "XyZ-boundary-123"
              ) -> tuple[bytes, dict[str, str]]:
    parts = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                     for name, data in files)
    return parts + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def huge_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid grey PNG of width x height pixels (100 megapixels by default), about 100 kB compressed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: (size, mtime, sha256)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# --- models and servers -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[Path, list[Path]]:
    """(model folder, a few digit images it did not train on) of a ``headless`` model on part of the digits."""
    from transferlab.examples import write_digits
    from transferlab.workflows.train import train

    root = tmp_path_factory.mktemp("serve_image")
    data = write_digits(root / "digits", per_class=8)
    train(data, out=root / "model", strategy="headless", val_fraction=0.25)
    unseen = write_digits(root / "unseen", per_class=2, seed=7)
    return root / "model", sorted(unseen.glob("*/*.png"))


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    from transferlab.workflows.train import train

    root = tmp_path_factory.mktemp("serve_text")
    pos = ["a wonderful , moving film", "great acting and a lovely story", "funny , warm and brilliant",
           "i loved every minute", "a delightful and charming movie", "superb , touching and smart"]
    neg = ["a dull , boring mess", "terrible acting and a stupid plot", "i hated every minute",
           "tedious and badly written", "an awful , lifeless film", "painfully slow and pointless"]
    data = root / "reviews.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",positive\n' for t in pos) +
                    "".join(f'"{t}",negative\n' for t in neg))
    train(data, out=root / "model", strategy="text_headless", task="text", val_fraction=0.25)
    return root / "model"


@pytest.fixture(scope="module")
def image_server(image_model: tuple[Path, list[Path]], cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    server = Served(image_model[0], cache_dir, tmp_path_factory.mktemp("image_server"), *LIMITS)
    yield server
    code = server.stop()
    assert code == 0, server.stderr()
    assert not list(server.tmpdir.glob("transferlab-serve-*")), "the temporary export was not removed at exit"


@pytest.fixture(scope="module")
def text_server(text_model: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    server = Served(text_model, cache_dir, tmp_path_factory.mktemp("text_server"), *LIMITS)
    yield server
    assert server.stop() == 0, server.stderr()


# --- answers ----------------------------------------------------------------------------------------------------------
def test_images_are_predicted_as_the_saved_model_predicts_them(image_server: Served, image_model) -> None:
    import transferlab

    model_dir, unseen = image_model
    files = unseen[:4]
    body, head = multipart([(p.name, p.read_bytes()) for p in files])
    status, doc = image_server.json("POST", "/predict?top_k=3", body, {**head, **AUTH})
    assert status == 200, doc
    expected = transferlab.load_model(model_dir).predict([p.read_bytes() for p in files], top_k=3)
    assert [p["input"] for p in doc["predictions"]] == [p.name for p in files]
    for got, want in zip(doc["predictions"], expected, strict=True):
        assert got["label"] == want["label"]
        assert list(got["probabilities"]) == list(want["probabilities"])  # same top 3, same order
        for label, p in want["probabilities"].items():
            assert got["probabilities"][label] == pytest.approx(p, abs=1e-4)
    assert "onnxruntime" in image_server.stderr()  # an exact export: served through the ONNX backend


def test_texts_are_predicted_as_the_saved_model_predicts_them(text_server: Served, text_model: Path) -> None:
    import transferlab

    texts = ["an absolutely wonderful film , i loved it", "a boring , awful waste of time", "   "]
    status, doc = text_server.json("POST", "/predict?top_k=2", json.dumps({"texts": texts}).encode(),
                                   {"Content-Type": "application/json", **AUTH})
    assert status == 200, doc
    expected = transferlab.load_model(text_model).predict(texts, top_k=2)
    got = doc["predictions"]
    assert [p["input"] for p in got] == texts
    assert [p.get("label") for p in got] == [p.get("label") for p in expected] == ["positive", "negative", None]
    assert got[2]["error"] == "empty text"  # an unusable input is an entry with its reason, in a 200
    for g, w in zip(got[:2], expected[:2], strict=True):
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-4)


def test_corrupt_image_behind_a_valid_header_is_an_entry_error(image_server: Served, image_model) -> None:
    good = image_model[1][0].read_bytes()
    noise = Image.frombytes("RGB", (300, 200), random.Random(1).randbytes(300 * 200 * 3))
    buf = io.BytesIO()
    noise.save(buf, format="JPEG", quality=95)
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]  # the header is whole, half the scan is missing
    body, head = multipart([("good.png", good), ("cut.jpg", truncated)])
    status, doc = image_server.json("POST", "/predict", body, {**head, **AUTH})
    assert status == 200, doc
    ok, bad = doc["predictions"]
    assert ok["label"] in [str(d) for d in range(10)]
    assert bad["input"] == "cut.jpg" and "truncated" in bad["error"]


def test_model_card_pages_and_schema(image_server: Served, image_model) -> None:
    model_dir = image_model[0]
    status, card = image_server.json("GET", "/model", headers=AUTH)
    assert status == 200
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert card["labels"] == json.loads((model_dir / "labels.json").read_text())
    assert card["strategy"] == "headless" and card["backbone"] == "efficientnet_lite0"
    assert card["metrics"]["accuracy"] == metrics["accuracy"] and card["backend"] == "onnx"
    assert card["data_report"]["splits"]["train"] and card["confusion_matrix"] is True
    assert card["compare_report"] is False and card["limits"]["max_files"] == 4
    status, head, png = image_server.request("GET", "/model/confusion_matrix.png", headers=AUTH)
    assert status == 200 and head["content-type"] == "image/png"
    assert png == (model_dir / "confusion_matrix.png").read_bytes()
    status, doc = image_server.json("GET", "/model/compare_report", headers=AUTH)
    assert status == 404 and "compare" in doc["error"]
    for path, marker in (("/", b'id="label"'), ("/card", b"Confusion matrix"), ("/docs", b"/predict")):
        status, head, page = image_server.request("GET", path)
        assert status == 200 and head["content-type"].startswith("text/html") and marker in page
        assert "default-src 'none'" in head["content-security-policy"]
        assert b"http://" not in page and b"https://" not in page  # offline: no external assets
    status, schema = image_server.json("GET", "/openapi.json")
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert list(body) == ["multipart/form-data"]
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["maxItems"] == 4
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_token_guards_predict_and_model_only(image_server: Served, image_model) -> None:
    body, head = multipart([("a.png", image_model[1][0].read_bytes())])
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        status, doc = image_server.json("POST", "/predict", body, {**head, **headers})
        assert status == 401 and "token" in doc["error"]
        status, head401, _ = image_server.request("GET", "/model", headers=headers)
        assert status == 401 and head401["www-authenticate"] == "Bearer"
    assert image_server.json("GET", "/health")[0] == 200
    assert image_server.request("GET", "/")[0] == 200


def test_each_limit_has_its_status_and_a_json_error(image_server: Served, text_server: Served, image_model) -> None:
    digit = image_model[1][0].read_bytes()
    cases: list[tuple[str, int, bytes, dict[str, str], str]] = []

    def add(name: str, status: int, body: bytes, headers: dict[str, str], server: str = "image") -> None:
        cases.append((name, status, body, headers, server))

    add("too many files", 422, *multipart([(f"{i}.png", digit) for i in range(5)]))
    add("pixels over the limit", 413, *multipart([("big.png", png_bytes(Image.new("L", (2100, 2000))))]))
    add("a 100-megapixel PNG", 413, *multipart([("bomb.png", huge_png())]))
    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, format="TIFF")
    add("a format outside the whitelist", 415, *multipart([("x.tif", tiff.getvalue())]))
    add("not an image", 415, *multipart([("x.png", b"GIF89a? not really" * 10)]))
    add("empty file", 422, *multipart([("empty.png", b"")]))
    add("wrong field", 422, *multipart([("a.png", digit)], field="image"))
    add("no boundary", 422, b"--x--\r\n", {"Content-Type": "multipart/form-data"})
    body, head = multipart([("a.png", digit)])
    add("truncated multipart", 422, body[:-20], head)
    add("JSON to an image model", 415, b'{"texts": ["a"]}', {"Content-Type": "application/json"})
    add("no content type", 415, body, {})
    add("body over the limit", 413, b"x" * (2 * 2**20 + 1), head)
    add("invalid JSON", 422, b'{"texts": [', {"Content-Type": "application/json"}, "text")
    add("texts not a list", 422, b'{"texts": "a"}', {"Content-Type": "application/json"}, "text")
    add("an extra key", 422, b'{"texts": ["a"], "x": 1}', {"Content-Type": "application/json"}, "text")
    add("no texts", 422, b'{"texts": []}', {"Content-Type": "application/json"}, "text")
    add("too many texts", 422, json.dumps({"texts": ["good"] * 9}).encode(), {"Content-Type": "application/json"},
        "text")
    add("text too long", 422, json.dumps({"texts": ["a" * 501]}).encode(), {"Content-Type": "application/json"},
        "text")
    add("deeply nested JSON", 422, b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, "text")
    add("images to a text model", 415, body, head, "text")
    servers = {"image": image_server, "text": text_server}
    for name, want, data, headers, which in cases:
        status, doc = servers[which].json("POST", "/predict", data, {**headers, **AUTH})
        assert (status, name) == (want, name), doc
        assert isinstance(doc["error"], str) and doc["error"], name
    for path, want in (("/predict?top_k=0", 422), ("/predict?top_k=abc", 422), ("/nowhere", 404),
                       ("/model/../config.json", 404)):
        status, doc = image_server.json("POST" if "predict" in path else "GET", path, body, {**head, **AUTH})
        assert status == want and doc["error"], path
    status, head405, data = image_server.request("DELETE", "/predict", headers=AUTH)
    assert status == 405 and head405["allow"] == "POST" and json.loads(data)["error"]
    status, doc = image_server.json("GET", "/health", headers={"Host": "attacker.example"})
    assert status == 400 and "Host" in doc["error"]  # DNS rebinding


def _chunked_post(port: int, path: str, content_type: str, chunks: int, size: int) -> int:
    """Stream ``chunks`` chunks of ``size`` bytes with Transfer-Encoding: chunked (no Content-Length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for k, v in {"Content-Type": content_type, "Transfer-Encoding": "chunked", **AUTH}.items():
            conn.putheader(k, v)
        conn.endheaders()
        for _ in range(chunks):
            try:
                conn.send(f"{size:x}\r\n".encode() + b"\0" * size + b"\r\n")
            except OSError:  # the server answered and closed: what it said is below
                break
        else:
            conn.send(b"0\r\n\r\n")
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_streamed_body_is_counted_while_it_arrives(image_server: Served) -> None:
    assert _chunked_post(image_server.port, "/predict", "multipart/form-data; boundary=b", 64, 64 * 1024) == 413
    assert image_server.json("GET", "/health")[0] == 200


# --- hostile clients --------------------------------------------------------------------------------------------------
def _raw(port: int, payload: bytes, half_close: bool = True) -> int | None:
    """Send raw bytes; the status line's code, or None when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(payload)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    break
                data += more
        except OSError:
            pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def test_malformed_requests_get_4xx_and_change_nothing(image_server: Served, text_server: Served, image_model,
                                                       cache_dir: Path) -> None:
    rng = random.Random(0)
    digit = image_model[1][0].read_bytes()
    cache_before, model_before = tree_state(cache_dir), tree_state(image_server.model_dir)
    tmp_before = tree_state(image_server.tmpdir)
    rss_before = image_server.rss_kb()
    names = ["../../etc/passwd", "/etc/shadow", "..\\..\\windows\\win.ini", "%2e%2e%2fconfig.json", "a\x00b.png",
             "x" * 5000 + ".png", "model/../../head.safetensors", "~/.ssh/id_rsa", "CON", "\u202egnp.exe"]
    statuses: list[tuple[str, int | None]] = []

    def post(kind: str, server: Served, body: bytes, headers: dict[str, str], path: str = "/predict") -> None:
        try:
            statuses.append((kind, server.request("POST", path, body, {**headers, **AUTH})[0]))
        except (ConnectionError, http.client.HTTPException):  # closed after an early answer to a big upload
            statuses.append((kind, None))

    for i in range(60):  # random bytes as images, under hostile names
        body, head = multipart([(names[i % len(names)], rng.randbytes(rng.randrange(1, 20_000)))])
        post("random bytes", image_server, body, head)
    for i in range(3):
        post("100-megapixel PNG", image_server, *multipart([(f"bomb{i}.png", huge_png())]))
    valid, head = multipart([("a.png", digit), ("b.png", digit)])
    for _ in range(40):  # truncated multipart, at random places
        post("truncated multipart", image_server, valid[: rng.randrange(0, len(valid) - 1)], head)
    for i in range(10):  # a corrupted byte stream in a well-formed multipart
        broken = bytearray(digit)
        for _ in range(20):
            broken[rng.randrange(8, len(broken))] = rng.randrange(256)
        post("corrupted image", image_server, *multipart([(f"c{i}.png", bytes(broken))]))
    wrong_json = [b"", b"null", b"[]", b"{}", b'{"texts": null}', b'{"texts": [1, 2]}', b'{"texts": [[]]}',
                  b'{"texts": ["a"], "top_k": 3}', b"\xff\xfe\x00", b'{"texts": ["\\ud800"]}', b"1e999999",
                  b'{"texts": ["a"]' + b" " * 1000, json.dumps({"texts": ["x" * 100_000]}).encode(),
                  b'{"texts": {"0": "a"}}', b'"texts"', b"{" * 50_000]
    for i in range(40):
        post("wrong JSON", text_server, wrong_json[i % len(wrong_json)], {"Content-Type": "application/json"})
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=" + "b" * 300,
               "multipart/form-data; boundary=\"", "multipart/mixed; boundary=b", "image/png", ";;;", "\x7f"):
        post("content type", image_server, valid, {"Content-Type": ct})
    for path in ("/predict/../model", "/../../etc/passwd", "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/model/..%2fconfig.json", "/predict?top_k=99999999999999999999", "/predict?top_k=-1",
                 "/web/index.html", "/deploy/web/../../cli/serve.py", "/model/confusion_matrix.png/../labels.json"):
        post("path trick", image_server, valid, head, path)
        statuses.append(("path trick GET", image_server.request("GET", path, headers=AUTH)[0]))
    big = "a" * 70_000
    raws = [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + big.encode() + b"\r\n\r\n",  # a huge header
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n",
        b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),  # a TLS hello
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\nAuthorization: Bearer "
        + TOKEN.encode() + b"\r\nContent-Type: " + head["Content-Type"].encode() + b"\r\n\r\n" + valid[:500],
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",  # no Host
    ]
    for i in range(20):
        statuses.append(("raw HTTP", _raw(image_server.port, raws[i % len(raws)])))
    for _ in range(5):
        statuses.append(("streamed over the limit", _chunked_post(image_server.port, "/predict",
                                                                  head["Content-Type"], 40, 64 * 1024)))

    assert len(statuses) >= 200
    server_errors = [(k, s) for k, s in statuses if s is not None and s >= 500]
    assert not server_errors, server_errors
    answered = [s for _, s in statuses if s is not None]
    assert len(answered) >= 180 and all(400 <= s < 500 or s == 200 for s in answered)
    by_kind: dict[str, set[int | None]] = {}
    for k, s in statuses:
        by_kind.setdefault(k, set()).add(s)
    assert by_kind["100-megapixel PNG"] == {413}
    assert by_kind["random bytes"] <= {415, 422}
    assert by_kind["truncated multipart"] <= {422}
    assert by_kind["wrong JSON"] <= {422}
    assert by_kind["content type"] <= {400, 415, 422}  # 400: a header value the HTTP parser refuses
    assert by_kind["streamed over the limit"] == {413}
    assert image_server.proc.poll() is None and text_server.proc.poll() is None
    assert image_server.json("GET", "/health")[0] == 200 and text_server.json("GET", "/health")[0] == 200
    assert image_server.rss_kb() < rss_before + 200_000, (rss_before, image_server.rss_kb())
    assert tree_state(cache_dir) == cache_before, "the feature cache changed"
    assert tree_state(image_server.model_dir) == model_before, "the model folder changed"
    assert tree_state(image_server.tmpdir) == tmp_before, "a request wrote a temporary file"
    err = image_server.stderr() + text_server.stderr()
    assert "Traceback" not in err and "unexpected error" not in err, err[-3000:]


def test_concurrent_requests_all_get_their_own_answers(image_server: Served, image_model) -> None:
    files = image_model[1][:8]
    expected = {}
    for p in files:
        body, head = multipart([(p.name, p.read_bytes())])
        expected[p.name] = image_server.json("POST", "/predict?top_k=2", body, {**head, **AUTH})[1]["predictions"]
    results: list[tuple[str, int, Any]] = []

    def client(k: int) -> None:
        for j in range(6):
            p = files[(k + j) % len(files)]
            body, head = multipart([(p.name, p.read_bytes())])
            status, doc = image_server.json("POST", "/predict?top_k=2", body, {**head, **AUTH})
            results.append((p.name, status, doc))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 48
    for name, status, doc in results:
        assert status == 200
        assert doc["predictions"][0]["label"] == expected[name][0]["label"]
        assert doc["predictions"][0]["probabilities"] == pytest.approx(expected[name][0]["probabilities"], abs=1e-6)


# --- the outside fuzzer -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["image", "text"])
def test_schemathesis_finds_no_failure(which: str, image_server: Served, text_server: Served,
                                       tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    server = image_server if which == "image" else text_server
    # every check; for images but one: "a schema-valid request is accepted" cannot hold when the schema can only say
    # "binary" and the server rightly refuses bytes that are no image (415)
    exclude = ["--exclude-checks", "positive_data_acceptance"] if which == "image" else []
    proc = subprocess.run([st, "run", f"{server.url}/openapi.json", "--checks", "all", *exclude,
                           "-H", f"Authorization: Bearer {TOKEN}", "--max-examples", "40", "--seed", "1",
                           "--generation-database", "none", "--no-color", "--request-timeout", "30"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "passed" in proc.stdout and " failed" not in proc.stdout.split("SUMMARY")[-1]
    assert server.json("GET", "/health")[0] == 200


# --- pieces, in process -----------------------------------------------------------------------------------------------
def test_batcher_gathers_concurrent_jobs_and_keeps_their_answers_apart() -> None:
    from transferlab.deploy.server import MicroBatcher

    calls: list[list[str]] = []
    busy: list[bool] = []

    def predict(items: list[str], k: int, others: bool) -> list[dict[str, Any]]:
        calls.append(list(items))
        busy.append(others)
        if "boom" in items:
            raise RuntimeError("backend failed")
        return [{"input": x, "label": x, "probabilities": {x: 0.7, "b": 0.2, "c": 0.1}} for x in items]

    async def main() -> tuple[list[Any], Any, list[Any]]:
        batcher = MicroBatcher(predict, max_items=4)
        await batcher.start()
        first = await asyncio.gather(*(batcher.submit([f"x{i}"], 1 + i % 3) for i in range(9)),
                                     batcher.submit(["y1", "y2", "y3", "y4", "y5"], 2))
        failed = await asyncio.gather(batcher.submit(["boom"], 1), return_exceptions=True)
        after = await batcher.submit(["z"], 3)
        await batcher.stop()
        return first, failed[0], after

    first, failed, after = asyncio.run(main())
    assert calls[:3] == [["x0", "x1", "x2", "x3"], ["x4", "x5", "x6", "x7"], ["x8"]]
    assert calls[3] == ["y1", "y2", "y3", "y4", "y5"]  # larger than a batch: goes alone, whole
    for i, entries in enumerate(first[:9]):
        assert [e["label"] for e in entries] == [f"x{i}"] and len(entries[0]["probabilities"]) == 1 + i % 3
    assert [e["label"] for e in first[9]] == ["y1", "y2", "y3", "y4", "y5"]
    assert isinstance(failed, RuntimeError)  # the failing batch's requests get the error...
    assert after[0]["label"] == "z"  # ...and the worker keeps serving
    # more was queued behind the first three batches; a request alone has the machine to itself
    assert busy[:3] == [True, True, True] and busy[-1] is False


def test_the_saved_model_backend_answers_like_the_onnx_one(image_server: Served, image_model) -> None:
    from starlette.testclient import TestClient

    from transferlab.deploy.backends import ModelBackend, open_backend
    from transferlab.deploy.server import create_app
    from transferlab.errors import UserError

    model_dir, unseen = image_model
    backend = open_backend(model_dir, prefer="model")
    assert isinstance(backend, ModelBackend) and backend.info["backend"] == "model"
    body, head = multipart([(p.name, p.read_bytes()) for p in unseen[:3]])
    with TestClient(create_app(backend, allowed_hosts=None)) as client:
        local = client.post("/predict?top_k=2", content=body, headers=head).json()["predictions"]
        assert client.get("/model").json()["metrics"]["accuracy"] is not None
    served = image_server.json("POST", "/predict?top_k=2", body, {**head, **AUTH})[1]["predictions"]
    assert [p["label"] for p in local] == [p["label"] for p in served]
    for a, b in zip(local, served, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
    with pytest.raises(UserError, match="not a transferlab model"):
        open_backend(model_dir.parent)


def test_command_line_errors_are_one_line_and_exit_2(image_model, tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "transferlab.cli", "serve", *args], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "TRANSFERLAB_QUIET": "1"})

    missing = serve(str(tmp_path / "nothing"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = serve(str(image_model[0]), "--port", str(taken.getsockname()[1]))
    not_model = serve(str(tmp_path))
    for proc, words in ((missing, "no such folder"), (busy, "cannot listen"), (not_model, "not a transferlab")):
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("transferlab: error")]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr


def test_batcher_workers_run_batches_side_by_side() -> None:
    from transferlab.deploy.server import MicroBatcher

    lock, state = threading.Lock(), {"now": 0, "most": 0}
    release = threading.Event()

    def predict(items: list[str], k: int, busy: bool) -> list[dict[str, Any]]:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            if state["now"] == 2:
                release.set()
        release.wait(10)  # the first call waits until a second one runs beside it
        with lock:
            state["now"] -= 1
        return [{"input": x, "label": x, "probabilities": {x: 1.0}} for x in items]

    async def main() -> list[Any]:
        batcher = MicroBatcher(predict, max_items=1, workers=2)
        await batcher.start()
        out = await asyncio.gather(*(batcher.submit([f"x{i}"], 1) for i in range(4)))
        await batcher.stop()
        return out

    out = asyncio.run(main())
    assert state["most"] == 2 and [o[0]["label"] for o in out] == ["x0", "x1", "x2", "x3"]
