"""Serving speed of ``transferlab serve``, measured from outside over TCP, as a client sees it.

Models: ``headless`` on EfficientNet-Lite0 trained on hymenoptera, ``text_headless`` on MiniLM trained on a stratified
sample of sst2's train split; each exported to ONNX (``transferlab.deploy.export``) and served from the export folder
by ``transferlab serve`` in a subprocess (one uvicorn worker, onnxruntime on every core). The client is a thin
keep-alive HTTP/1.1 client on raw sockets (request bytes built beforehand, so the client costs the shared cores
little), checking every answer: status 200 and the same label the sequential pass gave for that input.

Reported: start-up (process start to the first ``/health`` 200) for the export folder and for the saved model folder
(which the server exports itself first); one image per request sequentially (p50, p99, throughput) and ``--requests``
requests at ``--concurrency`` (errors, p50, p99, throughput, mean batch the server formed); the same for one sentence
per request. The sequential and concurrent passes alternate in ``--rounds`` rounds, so that a drift in the machine's
speed (a shared host) falls on both; the ratio of each round is reported too. Results in benchmarks/results/serve.json.

    .venv/bin/python benchmarks/serve_bench.py [--requests 2000] [--concurrency 8] [--sequential 600] [--rounds 4]
                                               [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import TRANSFERLAB, dataset, print_table, save_results  # noqa: E402

BOUNDARY = "transferlab-bench-boundary"


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "TRANSFERLAB_CACHE": str(cache), "TRANSFERLAB_QUIET": "1", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def _run(args: list[str], cache: Path) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, env=_env(cache))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (`uptime`): other jobs on these cores skew every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the server and a client ---------------------------------------------------------------------------------------
class Server:
    """``transferlab serve DIR --port 0``; ``startup_s`` is process start to the first /health 200."""

    def __init__(self, model_dir: Path, cache: Path) -> None:
        t = time.perf_counter()
        self.proc = subprocess.Popen([TRANSFERLAB, "serve", str(model_dir), "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env(cache))
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            raise SystemExit(f"serve did not start: {line} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.port = int(match.group(1))
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=10) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        self.startup_s = time.perf_counter() - t

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Client:
    """One keep-alive connection; ``call`` sends prepared request bytes and returns (status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, request: bytes) -> tuple[int, bytes]:
        try:
            self.sock.sendall(request)
            while b"\r\n\r\n" not in self.buf:
                self._recv()
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            while len(rest) < length:
                rest += self._recv_raw()
            self.buf = rest[length:]
            return int(head[9:12]), rest[:length]
        except (OSError, AttributeError, ValueError):
            self.sock.close()
            self._connect()
            return -1, b""

    def _recv(self) -> None:
        self.buf += self._recv_raw()

    def _recv_raw(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("closed")
        return data

    def close(self) -> None:
        self.sock.close()


def image_request(port: int, name: str, data: bytes) -> bytes:
    body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return (f"POST /predict?top_k=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def text_request(port: int, text: str) -> bytes:
    body = json.dumps({"texts": [text]}).encode()
    return (f"POST /predict?top_k=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _label(body: bytes) -> str | None:
    try:
        return json.loads(body)["predictions"][0].get("label")
    except (ValueError, KeyError, IndexError):
        return None


def sequential(port: int, requests: list[bytes], n: int, labels: list[str | None] | None = None
               ) -> tuple[dict[str, Any], list[str | None]]:
    """``n`` requests one after another on one connection (after 20 unmeasured); also each input's label (the first
    answer for it; later rounds pass the labels in and check each answer against them)."""
    client = Client(port)
    for r in requests[:20]:
        client.call(r)
    checking = labels is not None
    labels = list(labels) if labels is not None else [None] * len(requests)
    times, errors = [], 0
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        status, body = client.call(requests[i % len(requests)])
        times.append(time.perf_counter() - t)
        label = _label(body) if status == 200 else None
        if label is None or (checking and labels[i % len(requests)] not in (None, label)):
            errors += 1
        elif labels[i % len(requests)] is None:
            labels[i % len(requests)] = label
    wall = time.perf_counter() - start
    client.close()
    return {**_stats(times, errors, n, wall, 1), "times": times}, labels


def concurrent(port: int, requests: list[bytes], expected: list[str | None], n: int, workers: int) -> dict[str, Any]:
    """``n`` requests from ``workers`` threads, each with its own keep-alive connection."""
    lock = threading.Lock()
    state = {"next": 0, "errors": 0}
    times: list[float] = []

    def work() -> None:
        client = Client(port)
        local, errors = [], 0
        while True:
            with lock:
                i = state["next"]
                if i >= n:
                    break
                state["next"] += 1
            j = i % len(requests)
            t = time.perf_counter()
            status, body = client.call(requests[j])
            local.append(time.perf_counter() - t)
            if status != 200 or (expected[j] is not None and _label(body) != expected[j]):
                errors += 1
        client.close()
        with lock:
            times.extend(local)
            state["errors"] += errors

    threads = [threading.Thread(target=work) for _ in range(workers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**_stats(times, state["errors"], n, time.perf_counter() - start, workers), "times": times}


def _stats(times: list[float], errors: int, n: int, wall: float, workers: int) -> dict[str, Any]:
    ordered = sorted(times)

    def pct(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"requests": n, "concurrency": workers, "errors": errors, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "req_per_s": n / wall, "seconds": wall}


def _pooled(passes: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """One row for several passes of the same kind: latencies pooled, throughput over their summed time, and the
    slowest and fastest pass's throughput."""
    times = [t for p in passes for t in p["times"]]
    row = _stats(times, sum(p["errors"] for p in passes), sum(p["requests"] for p in passes),
                 sum(p["seconds"] for p in passes), workers)
    rates = [p["req_per_s"] for p in passes]
    return {**row, "req_per_s_min": min(rates), "req_per_s_max": max(rates)}


def bench_model(name: str, model_dir: Path, export_dir: Path, cache: Path, requests_of: Any, inputs: list[Any],
                args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start-up twice, then ``args.rounds`` rounds of (a sequential pass, a concurrent pass), each round with its
    share of the requests: alternating the two kinds cancels a drift in the machine's speed (other VMs on the same
    host), which one long pass of each would put wholly into their ratio."""
    rows = []
    server = Server(model_dir, cache)  # start-up when the server exports the saved model itself
    rows.append({"case": f"{name}: start-up, saved model folder (exports it)", "startup_s": server.startup_s})
    server.stop()
    server = Server(export_dir, cache)
    rows.append({"case": f"{name}: start-up, export folder", "startup_s": server.startup_s})
    requests = [requests_of(server.port, x) for x in inputs]
    rounds = max(1, args.rounds)
    seqs, concs, labels, ratios = [], [], None, []
    before = server.health()
    for r in range(rounds):
        seq, labels = sequential(server.port, requests, args.sequential // rounds, labels)
        conc = concurrent(server.port, requests, labels, args.requests // rounds
                          + (args.requests % rounds if r == rounds - 1 else 0), args.concurrency)
        seqs.append(seq)
        concs.append(conc)
        ratios.append(round(conc["req_per_s"] / seq["req_per_s"], 3))
    after = server.health()
    server.stop()
    seq, conc = _pooled(seqs, 1), _pooled(concs, args.concurrency)
    # the batches the server formed: the sequential passes' requests each took one
    seq_requests = sum(s["requests"] + 20 for s in seqs)
    batches = after["batches"] - before["batches"] - seq_requests
    conc["mean_batch"] = (after["predicted"] - before["predicted"] - seq_requests) / max(1, batches)
    seq["case"], conc["case"] = f"{name}: sequential", f"{name}: concurrency {args.concurrency}"
    conc["speedup"] = conc["req_per_s"] / seq["req_per_s"]
    conc["speedup_per_round"] = ratios
    return [*rows, seq, conc]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests in the concurrent passes, all rounds together (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=600,
                        help="requests in the sequential passes, all rounds together (default 600)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds of a sequential and a concurrent pass (default 4)")
    parser.add_argument("--sst2-train", type=int, default=1000, help="sst2 training sentences sampled (default 1000)")
    parser.add_argument("--work", type=Path, default=None, help="keep the models here (reused when present)")
    args = parser.parse_args()
    hym, sst2 = dataset("hymenoptera"), dataset("sst2")
    if hym is None or sst2 is None:
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    image_model, text_model = work / "hymenoptera_lite0", work / "sst2_minilm"
    if not (image_model / "config.json").exists():
        _run([TRANSFERLAB, "train", str(hym), "--strategy", "headless", "--out", str(image_model)], cache)
    if not (text_model / "config.json").exists():
        with open(sst2 / "train.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        random.Random(0).shuffle(rows)
        sample = work / "sst2_train_sample.csv"
        with open(sample, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["text", "label"])
            w.writeheader()
            w.writerows({"text": r["text"], "label": r["label"]} for r in rows[: args.sst2_train])
        _run([TRANSFERLAB, "train", str(sample), "--strategy", "text_headless", "--out", str(text_model)], cache)
    for model in (image_model, text_model):
        if not (model.with_name(model.name + "_export") / "export.json").exists():
            _run([sys.executable, "-c", "import sys; from transferlab.deploy.export import export_model; "
                  "export_model(sys.argv[1], sys.argv[2])", str(model), str(model.with_name(model.name + "_export"))],
                 cache)
    images = [(p.name, p.read_bytes()) for p in sorted((hym / "val").glob("*/*")) if p.is_file()]
    with open(sst2 / "test.csv", encoding="utf-8", newline="") as f:
        sentences = [r["text"] for r in csv.DictReader(f)][:300]
    load_before = load_average()
    rows = bench_model("image (Lite0 headless)", image_model, work / "hymenoptera_lite0_export", cache,
                       lambda port, x: image_request(port, *x), images, args)
    rows += bench_model("text (MiniLM text_headless)", text_model, work / "sst2_minilm_export", cache,
                        text_request, sentences, args)
    load_after = load_average()
    print_table(rows, ["case", "startup_s", "requests", "concurrency", "errors", "p50_ms", "p99_ms", "req_per_s",
                       "mean_batch", "speedup"])
    by = {r["case"]: r for r in rows}
    image_seq, image_conc = by["image (Lite0 headless): sequential"], by[
        f"image (Lite0 headless): concurrency {args.concurrency}"]
    text_seq = by["text (MiniLM text_headless): sequential"]
    checks = {
        "image p50 <= 25 ms (one image per request)": image_seq["p50_ms"] <= 25,
        f"{args.requests} requests at concurrency {args.concurrency}, zero errors": image_conc["errors"] == 0,
        "throughput at concurrency >= 1.5x sequential": image_conc["speedup"] >= 1.5,
        "text p50 <= 15 ms (one sentence)": text_seq["p50_ms"] <= 15,
        "start-up of an export folder < 3 s": all(r["startup_s"] < 3 for r in rows if "export folder" in r["case"]),
    }
    print(f"\nload average before {load_before}, after {load_after} (other jobs share these cores)")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    save_results("serve", {"load_average_before": load_before, "load_average_after": load_after,
                           "settings": {"requests": args.requests, "concurrency": args.concurrency,
                                        "sequential": args.sequential, "rounds": args.rounds,
                                        "sst2_train": args.sst2_train},
                           "rows": rows, "checks": checks, "command": " ".join(["benchmarks/serve_bench.py",
                                                                                 *sys.argv[1:]])})
    if args.work is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
