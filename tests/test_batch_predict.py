"""``transferlab predict ... --out FILE``: streamed batch prediction into CSV/JSONL that survives being killed.

A real ``headless`` model (k-nearest neighbours on EfficientNet-Lite0 features, so training takes no optimiser time)
on part of the digits. Copies of the digits hit the feature cache and predict fast; the interruption tests use random
JPEGs nobody has seen, so each batch really runs the backbone and the run is slow enough to be killed part way.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.cli import main
from transferlab.errors import UserError
from transferlab.workflows.predict import CSV_COLUMNS, predict, predict_to_file, progress_path


@pytest.fixture(scope="module")
def model_dir(digits_dir: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.workflows.train import train

    out = tmp_path_factory.mktemp("batch_predict") / "model"
    result = train(digits_dir, out=out, strategy="headless", params={"classifier": "knn"}, val_fraction=0.2)
    assert result.metrics["accuracy"] > 0.5
    return out


@pytest.fixture(scope="module")
def images(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits in two class folders plus files that are no images: text named .jpg, an empty file, a hidden file."""
    root = tmp_path_factory.mktemp("to_predict") / "images"
    for label in ("3", "8"):
        (root / f"class_{label}").mkdir(parents=True)
        for p in sorted((digits_dir / label).glob("*.png"))[:9]:
            shutil.copy(p, root / f"class_{label}" / p.name)
    (root / "class_3" / "x.jpg").write_text("this is not a JPEG\n")
    (root / "class_8" / "empty.png").write_bytes(b"")
    (root / ".hidden.png").write_bytes(b"")
    return root


def _listing(folder: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return out


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        return list(reader)


def _jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _same_prediction(row: dict, expected: dict) -> None:
    assert row["input"] == expected["input"]
    if "error" in expected:
        assert row.get("error") == expected["error"] and not row.get("label")
        return
    assert row["label"] == expected["label"]
    assert list(row["probabilities"]) == list(expected["probabilities"])
    assert row["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)  # batches differ: BLAS order


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_streamed_file_holds_the_same_predictions_with_errors_as_rows(model_dir: Path, images: Path,
                                                                      tmp_path: Path, suffix: str) -> None:
    expected = predict(model_dir, [images], top_k=2)
    assert [e["input"] for e in expected] == _listing(images)
    assert sum("error" in e for e in expected) == 2
    out = tmp_path / f"preds{suffix}"
    summary = predict_to_file(model_dir, [images], out, top_k=2, batch_size=5)  # 20 inputs: 4 batches
    assert summary["total"] == 20 and summary["predicted"] == 18 and summary["failed"] == 2
    assert summary["skipped_as_done"] == 0 and summary["errors_in_output"] == 2 and not summary["already_complete"]
    if suffix == ".jsonl":
        rows = _jsonl_rows(out)
    else:
        rows = []
        for r in _csv_rows(out):
            probs = json.loads(r["probabilities"]) if r["probabilities"] else {}
            if r["error"]:
                assert r["label"] == r["score"] == r["probabilities"] == ""
                rows.append({"input": r["input"], "error": r["error"]})
            else:
                assert float(r["score"]) == probs[r["label"]] == max(probs.values())
                rows.append({"input": r["input"], "label": r["label"], "probabilities": probs})
    assert len(rows) == len(expected)
    for row, e in zip(rows, expected, strict=True):
        _same_prediction(row, e)
    record = json.loads(progress_path(out).read_text())
    assert record["complete"] and record["rows"] == 20 and record["bytes"] == out.stat().st_size


def test_cli_out_exits_0_with_unreadable_inputs_and_a_finished_run_is_not_redone(model_dir: Path, images: Path,
                                                                                 tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.csv"
    assert main(["predict", str(model_dir), str(images), "--out", str(out), "--batch-size", "8", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["total"], summary["predicted"], summary["failed"]) == (20, 18, 2)
    assert captured.err.strip().splitlines()[-1].startswith(f"{out}: 20 rows, 18 predicted and 2 unreadable")
    before = out.read_bytes()
    assert main(["predict", str(model_dir), str(images), "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["already_complete"] and again["predicted"] == again["failed"] == 0
    assert again["skipped_as_done"] == 20 and again["errors_in_output"] == 2
    assert out.read_bytes() == before
    assert main(["predict", str(model_dir), str(images), "--out", str(out), "--restart", "--json"]) == 0
    redone = json.loads(capsys.readouterr().out)
    assert redone["predicted"] == 18 and redone["skipped_as_done"] == 0
    assert [r["input"] for r in _csv_rows(out)] == _listing(images)


def test_mismatches_and_bad_usage_exit_2_with_one_line(model_dir: Path, images: Path, tmp_path: Path,
                                                       capsys) -> None:
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(model_dir), str(images), "--out", str(out)]) == 0
    capsys.readouterr()
    before = out.read_bytes()
    cases = [
        ([str(images / "class_3")], "other inputs"),  # other inputs into the same file
        ([str(images), "--top-k", "1"], "--top-k 3"),
    ]
    for extra, reason in cases:
        assert main(["predict", str(model_dir), *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and reason in err[0] and "--restart" in err[0]
    assert out.read_bytes() == before  # refused, untouched
    stranger = tmp_path / "notes.csv"
    stranger.write_text("someone else's file\n")
    assert main(["predict", str(model_dir), str(images), "--out", str(stranger)]) == 2
    assert "--restart" in capsys.readouterr().err and stranger.read_text() == "someone else's file\n"
    assert main(["predict", str(model_dir), str(images), "--out", str(tmp_path / "p.txt")]) == 2
    assert ".csv or .jsonl" in capsys.readouterr().err and not (tmp_path / "p.txt").exists()
    assert main(["predict", str(model_dir), str(images), "--restart"]) == 2
    assert "--out" in capsys.readouterr().err
    (tmp_path / "nothing").mkdir()
    assert main(["predict", str(model_dir), str(tmp_path / "nothing"), "--out", str(tmp_path / "n.csv")]) == 2
    assert "no input files" in capsys.readouterr().err and not (tmp_path / "n.csv").exists()


def test_a_cut_off_last_line_is_truncated_and_recorded_rows_are_not_predicted_again(model_dir: Path, images: Path,
                                                                                     tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    predict_to_file(model_dir, [images], out, top_k=2, batch_size=6)
    complete = out.read_bytes()
    lines = complete.splitlines(keepends=True)
    # as if killed while writing the third batch: two batches recorded, half a row of the third on disk
    recorded = b"".join(lines[:12])
    out.write_bytes(recorded + lines[12][:25])
    sidecar = progress_path(out)
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "rows": 12, "bytes": len(recorded), "complete": False,
                                   "errors": sum(b'"error"' in line for line in lines[:12])}))
    summary = predict_to_file(model_dir, [images], out, top_k=2, batch_size=6)
    assert summary["skipped_as_done"] == 12 and summary["predicted"] + summary["failed"] == 8
    assert summary["errors_in_output"] == 2
    rows = _jsonl_rows(out)
    assert [r["input"] for r in rows] == _listing(images)  # each input once, no half line
    assert out.read_bytes().startswith(recorded)
    for row, e in zip(rows, (json.loads(line) for line in lines), strict=True):
        _same_prediction(row, e)
    # a torn tail longer than the rest of the run (a crash can leave zero-filled blocks past the last write)
    out.write_bytes(recorded + b"\0" * 16384)
    sidecar.write_text(json.dumps({**record, "rows": 12, "bytes": len(recorded), "complete": False}))
    predict_to_file(model_dir, [images], out, top_k=2, batch_size=6)
    assert b"\0" not in out.read_bytes() and [r["input"] for r in _jsonl_rows(out)] == _listing(images)
    # the file shorter than its record: edited or damaged, not something to append to
    out.write_bytes(recorded[:-40])
    sidecar.write_text(json.dumps({**record, "rows": 12, "bytes": len(recorded), "complete": False}))
    with pytest.raises(UserError, match="shorter"):
        predict_to_file(model_dir, [images], out, top_k=2)


def test_image_table_input_is_read_by_its_path_column(model_dir: Path, images: Path, tmp_path: Path) -> None:
    table = images.parent / "list.csv"
    names = [f"images/class_8/{p.name}" for p in sorted((images / "class_8").iterdir())]
    table.write_text("label,path\n" + "".join(f"x,{n}\n" for n in names))
    out = tmp_path / "t.csv"
    summary = predict_to_file(model_dir, [str(table)], out)
    assert summary["total"] == len(names) and summary["failed"] == 1
    assert [r["input"] for r in _csv_rows(out)] == [os.path.join(str(images.parent), n) for n in names]


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 random JPEGs: no cache entry, so every batch runs the backbone (tens of milliseconds an image)."""
    root = tmp_path_factory.mktemp("unseen") / "jpegs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(120):
        pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((64, 48), Image.Resampling.BILINEAR).save(root / f"img_{i:04d}.jpg")
    return root


def _rows_recorded(out: Path) -> int:
    try:
        return json.loads(progress_path(out).read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return 0


def _interrupt(cmd: list[str], out: Path, after_rows: int, sig: int) -> subprocess.CompletedProcess:
    """Start ``cmd``, send ``sig`` once ``out`` has at least ``after_rows`` recorded rows; the finished process."""
    # a test run started in the background (`cmd &`) ignores SIGINT, and the child would inherit that: restore it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while proc.poll() is None and _rows_recorded(out) < after_rows and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def test_killed_and_interrupted_runs_resume_without_predicting_a_recorded_batch_twice(model_dir: Path,
                                                                                       unseen: Path,
                                                                                       tmp_path: Path) -> None:
    out = tmp_path / "unseen.csv"
    cmd = [sys.executable, "-m", "transferlab.cli", "predict", str(model_dir), str(unseen), "--out", str(out),
           "--batch-size", "4"]
    killed = _interrupt(cmd, out, 8, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # killed part way, not finished
    first = json.loads(progress_path(out).read_text())
    assert 8 <= first["rows"] < 120 and not first["complete"]
    kept = out.read_bytes()[:first["bytes"]]

    interrupted = _interrupt(cmd, out, first["rows"] + 8, signal.SIGINT)  # Ctrl-C: exit 130, rows as recorded
    assert interrupted.returncode == 130, interrupted.stderr
    assert "resume" in interrupted.stderr and "Traceback" not in interrupted.stderr
    second = json.loads(progress_path(out).read_text())
    assert first["rows"] + 8 <= second["rows"] < 120
    assert out.stat().st_size == second["bytes"] and out.read_bytes().startswith(kept)
    kept = out.read_bytes()

    summary = predict_to_file(model_dir, [str(unseen)], out, top_k=3)  # the CLI's default --top-k: the same run
    assert summary["skipped_as_done"] == second["rows"]
    assert summary["predicted"] + summary["failed"] == 120 - second["rows"]  # only what no run had recorded
    assert out.read_bytes().startswith(kept)
    rows = _csv_rows(out)
    assert [r["input"] for r in rows] == _listing(unseen)  # every input exactly once, in order
    assert all(r["label"] and not r["error"] for r in rows)
    assert json.loads(progress_path(out).read_text())["complete"]
