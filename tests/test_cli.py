"""The CLI end to end: train, predict --json, evaluate --json, models --json; exit codes; a warm cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferlab.cli import main


@pytest.fixture(scope="module")
def trained(digits_dir, cache_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    assert main(["train", str(digits_dir), "--out", str(out), "--seed", "1"]) == 0
    return out


def test_train_writes_a_complete_model_dir(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "labels.json", "head.json", "head.safetensors", "metrics.json", "data_report.json",
            "confusion_matrix.png", "mistakes.json"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pickle"))]
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "train_seconds", "balanced_accuracy", "roc_auc", "per_class"):
        assert key in metrics
    config = json.loads((trained / "config.json").read_text())
    assert config["strategy"]["name"] == "headless" and config["preprocessing"]["size"] == 224
    png = (trained / "confusion_matrix.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_predict_json(trained: Path, digits_dir: Path, capsys) -> None:
    images = sorted((digits_dir / "3").iterdir())[:2]
    capsys.readouterr()
    assert main(["predict", str(trained), *map(str, images), "--json", "--top-k", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["predictions"]) == 2
    for p in doc["predictions"]:
        assert set(p) == {"input", "label", "probabilities"} and len(p["probabilities"]) == 2
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)


def test_predict_bad_file_reports_and_exits_2(trained: Path, digits_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    good = next((digits_dir / "1").iterdir())
    capsys.readouterr()
    assert main(["predict", str(trained), str(good), str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "label" in doc["predictions"][0] and "error" in doc["predictions"][1]
    assert "broken.jpg" in captured.err


def test_evaluate_json_matches_training_metrics(trained: Path, digits_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["evaluate", str(trained), str(digits_dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["count"] == 120 and 0.0 <= metrics["accuracy"] <= 1.0
    assert len(metrics["confusion_matrix"]) == 10


def test_models_json(capsys) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    names = {r["name"] for r in rows}
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "squeezenet1_1"} <= names
    assert all(r["feature_dim"] > 0 and r["params_millions"] > 0 for r in rows)


def test_usage_errors_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["predict", str(tmp_path), "x.jpg"]) == 2  # not a model folder


def test_warm_cache_computes_nothing(digits_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    import shutil

    from transferlab.cache import FeatureCache
    from transferlab.features.images import FeatureExtractor

    paths = [str(p) for p in sorted((digits_dir / "5").iterdir())]
    ex = FeatureExtractor("efficientnet_lite0", cache=FeatureCache(cache_dir), progress=False)
    first = ex.extract(paths)
    copy = tmp_path / "renamed.png"
    shutil.copy(paths[0], copy)  # same bytes, new name: a cache hit
    second = ex.extract([*paths, str(copy)])
    assert second.computed == 0 and second.cache_hits == len(paths) + 1
    assert (second.arrays["features"][:-1] == first.arrays["features"]).all()
