"""Streamed batch prediction at scale: ``transferlab predict MODEL FOLDER --out out.csv`` over N synthetic images,
SIGKILLed part way and run again. Targets (the issue's acceptance point 5): peak RSS under 1.5 GB in each run, and
the second run resumes without predicting a recorded batch twice: every input exactly once in the output, the rows
the first run recorded kept byte for byte, and the second run predicting only the rest (its summary's
``skipped_as_done`` equals the rows recorded at the kill).

The images are random 128x96 JPEGs (a noisy background with a few filled shapes), 1,000 per subfolder, plus two
unreadable files (text named .jpg, an empty .png) that must come out as error rows. They are never in the feature
cache (a fresh one, which prediction only reads), so every image runs the backbone. The model is ``headless`` on
EfficientNet-Lite0, trained on the digits example (or --model DIR). Peak RSS is the kernel's own figure for each
child process (``VmHWM`` from /proc, polled every 0.1 s; ``ru_maxrss`` from ``wait4`` as a cross-check, which
also counts this process's size when it started the child); resident memory is sampled against the rows recorded
so far, to show it flat.

    nice -n 10 .venv/bin/python benchmarks/batch_predict.py             # 20,000 images (~10 min on 2 cores)
    .venv/bin/python benchmarks/batch_predict.py --n 2000               # a quick run
    .venv/bin/python benchmarks/batch_predict.py --images DIR --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import TRANSFERLAB, print_table, save_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFERLAB_QUIET", "1")

RSS_TARGET_MB = 1500


def write_images(root: Path, n: int, seed: int = 0) -> None:
    """``n`` random JPEGs in subfolders of 1,000, and two files that are not images."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"part_{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        img = Image.fromarray(noise).resize((128, 96), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = int(rng.integers(0, 96)), int(rng.integers(0, 64))
            box = (x0, y0, x0 + int(rng.integers(8, 32)), y0 + int(rng.integers(8, 32)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        img.save(folder / f"img_{i:06d}.jpg", quality=85)
    (root / "part_000" / "not_an_image.jpg").write_text("this is text, not a JPEG\n")
    (root / "part_000" / "empty.png").write_bytes(b"")


def listing(folder: Path) -> list[str]:
    """The inputs in the order ``predict`` walks a folder (sorted, subfolders too, hidden files left out)."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return out


def train_model(out: Path, env: dict[str, str]) -> None:
    """``headless`` on the digits example, in child processes: this process stays small, so the size it has when
    it starts the runs measured cannot show up in their ``ru_maxrss`` (Linux carries it across fork and exec)."""
    digits = out.parent / "digits"
    subprocess.run([TRANSFERLAB, "example-data", "digits", "--out", str(digits)], env=env, check=True,
                   capture_output=True)
    subprocess.run([TRANSFERLAB, "train", str(digits), "--strategy", "headless", "--out", str(out)], env=env,
                   check=True, capture_output=True)


def recorded(out: Path) -> dict:
    try:
        return json.loads(out.with_name(out.name + ".progress.json").read_text())
    except (OSError, ValueError):
        return {"rows": 0, "bytes": 0}


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(resident now, peak resident) of a running process in MB, from /proc (VmRSS, VmHWM: the peak of the
    process image it execed, unlike ``ru_maxrss``); None once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def run(cmd: list[str], env: dict[str, str], out: Path, total: int, kill_at_rows: int | None = None) -> dict:
    """Run ``cmd``, sampling its resident memory against the rows recorded so far; SIGKILL it once
    ``kill_at_rows`` rows are recorded. Wall seconds, exit status, peak RSS (``ru_maxrss``), samples, stdout."""
    stdout, stderr = (out.parent / f"{name}{time.monotonic_ns()}.txt" for name in ("stdout", "stderr"))
    with open(stdout, "w") as f, open(stderr, "w") as g:  # files, not pipes: nobody reads them while it runs
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=g, env=env)
    samples: list[tuple[int, float]] = []
    peak = 0.0
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # wait4, not poll(): it hands back this child's rusage
        if pid:
            break
        rows = recorded(out)["rows"]
        mem = memory_mb(proc.pid)
        if mem is not None:
            samples.append((rows, mem[0]))
            peak = max(peak, mem[1])
        if kill_at_rows is not None and not killed and rows >= kill_at_rows:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.1)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "returncode": proc.returncode, "peak_rss_mb": peak, "ru_maxrss_mb": usage.ru_maxrss / 1024,
            "samples": samples, "stdout": stdout.read_text(), "stderr": stderr.read_text(), "killed": killed}


def flatness(samples: list[tuple[int, float]]) -> dict[str, float | None]:
    """Largest resident memory while the first and while the last fifth of a run's own rows were predicted: equal
    when memory is flat in the number of inputs."""
    rows = [r for r, _ in samples]
    lo, hi = (min(rows), max(rows)) if rows else (0, 0)
    span = max(1, hi - lo)

    def peak(a: float, b: float) -> float | None:
        values = [mb for r, mb in samples if lo + a * span <= r <= lo + b * span]
        return round(max(values), 1) if values else None

    return {"rss_mb_first_fifth": peak(0.0, 0.2), "rss_mb_last_fifth": peak(0.8, 1.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="synthetic images to write (default 20,000)")
    ap.add_argument("--images", type=Path, default=None, help="predict this folder instead of synthetic images")
    ap.add_argument("--model", type=Path, default=None, help="a saved image model (default: headless on digits)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--kill-at", type=float, default=0.4, help="SIGKILL the first run at this share of rows")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="batch_predict_") as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "cache"  # fresh: no image below is in it, and prediction never adds one
        images = args.images
        if images is None:
            t = time.perf_counter()
            images = tmp / "images"
            write_images(images, args.n)
            print(f"wrote {args.n} images + 2 unreadable files in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        env = {**os.environ, "TRANSFERLAB_CACHE": str(cache), "TRANSFERLAB_QUIET": "1", "HF_HUB_OFFLINE": "1"}
        model = args.model
        if model is None:
            t = time.perf_counter()
            model = tmp / "model"
            train_model(model, env)
            print(f"trained {model} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        expected = listing(images)
        total = len(expected)
        # the backbone's ONNX export (done once per cache, with torch) is not part of what is measured
        subprocess.run([TRANSFERLAB, "predict", str(model), expected[-1]], env=env, check=True, capture_output=True)

        out = tmp / "out.csv"
        cmd = [TRANSFERLAB, "predict", str(model), str(images), "--out", str(out), "--batch-size",
               str(args.batch_size)]
        kill_at = int(args.kill_at * total)
        first = run(cmd, env, out, total, kill_at_rows=kill_at)
        if not first["killed"] or first["returncode"] != -signal.SIGKILL:
            raise SystemExit(f"the first run was not killed part way (exit {first['returncode']}): {first['stderr']}")
        at_kill = recorded(out)
        file_rows_at_kill = out.read_bytes().count(b"\n") - 1  # complete lines after the header, recorded or not
        prefix_digest = hashlib.sha256(out.read_bytes()[:at_kill["bytes"]]).hexdigest()

        second = run([*cmd, "--json"], env, out, total)
        if second["returncode"] != 0:
            raise SystemExit(f"the second run failed (exit {second['returncode']}): {second['stderr']}")
        summary = json.loads(second["stdout"])
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        inputs = [r["input"] for r in rows]
        duplicates = len(inputs) - len(set(inputs))
        missing = len(set(expected) - set(inputs))
        # the first run's recorded rows plus what the second predicted: more than the inputs would mean some
        # recorded row was predicted again (the batch cut off by the kill was never recorded, so it may be redone)
        twice = at_kill["rows"] + summary["predicted"] + summary["failed"] - total
        checks = {
            "in_order_each_once": inputs == expected,
            "duplicates": duplicates,
            "missing": missing,
            "skipped_as_done_equals_rows_at_kill": summary["skipped_as_done"] == at_kill["rows"],
            "rows_predicted_twice": twice,
            "recorded_rows_kept_byte_for_byte":
                hashlib.sha256(out.read_bytes()[:at_kill["bytes"]]).hexdigest() == prefix_digest,
            "error_rows": sum(1 for r in rows if r["error"]),
        }

    result = {
        "images": total, "batch_size": args.batch_size, "kill_at_rows": kill_at,
        "rows_recorded_at_kill": at_kill["rows"], "complete_lines_in_file_at_kill": file_rows_at_kill,
        "first_run": {"wall_s": round(first["wall_s"], 1), "peak_rss_mb": round(first["peak_rss_mb"], 1),
                      "ru_maxrss_mb": round(first["ru_maxrss_mb"], 1),
                      "images_per_s": round(at_kill["rows"] / first["wall_s"], 1),
                      **flatness(first["samples"])},
        "second_run": {"wall_s": round(second["wall_s"], 1), "peak_rss_mb": round(second["peak_rss_mb"], 1),
                       "ru_maxrss_mb": round(second["ru_maxrss_mb"], 1),
                       "images_per_s": round((total - at_kill["rows"]) / second["wall_s"], 1),
                       **flatness(second["samples"])},
        "summary_second_run": summary,
        "checks": checks,
        "rss_target_mb": RSS_TARGET_MB,
    }
    ok = (checks["in_order_each_once"] and checks["duplicates"] == 0 and checks["missing"] == 0
          and checks["skipped_as_done_equals_rows_at_kill"] and checks["rows_predicted_twice"] == 0
          and checks["recorded_rows_kept_byte_for_byte"]
          and max(first["peak_rss_mb"], second["peak_rss_mb"], first["ru_maxrss_mb"], second["ru_maxrss_mb"])
          < RSS_TARGET_MB)
    result["meets_target"] = ok
    table = [
        {"run": "1 (SIGKILL)", "rows": at_kill["rows"], **result["first_run"]},
        {"run": "2 (resume)", "rows": total - at_kill["rows"], **result["second_run"]},
    ]
    print_table(table, ["run", "rows", "wall_s", "images_per_s", "peak_rss_mb", "ru_maxrss_mb", "rss_mb_first_fifth",
                        "rss_mb_last_fifth"])
    print(f"\n{total} images, batch {args.batch_size}: killed with {at_kill['rows']} rows recorded "
          f"({file_rows_at_kill} complete lines on disk); resumed with skipped_as_done={summary['skipped_as_done']}; "
          f"duplicates {duplicates}, missing {missing}, rows predicted twice {checks['rows_predicted_twice']}, "
          f"error rows {checks['error_rows']}; peak RSS {max(first['peak_rss_mb'], second['peak_rss_mb']):.0f} MB "
          f"(target < {RSS_TARGET_MB}): {'OK' if ok else 'FAILED'}")
    save_results("batch_predict", result)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
