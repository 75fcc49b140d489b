"""compare, rank, advice and --strategy auto on real features; the HTML report in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.analysis.advice import negative_transfer_warning, recommend
from transferlab.analysis.transferability import h_score, knn_loo_accuracy, logme
from transferlab.cli import main


def test_transferability_scores_prefer_separable_features() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    good = rng.normal(size=(120, 32)) + 3.0 * np.eye(3, 32)[y]
    bad = rng.normal(size=(120, 32))
    assert logme(good, y) > logme(bad, y)
    assert h_score(good, y) > h_score(bad, y)
    assert knn_loo_accuracy(good, y) > 0.9 > 0.6 > knn_loo_accuracy(bad, y)


def test_advice_rules_and_negative_transfer() -> None:
    assert recommend(200, 2, 0.7).strategy == "headless"
    assert recommend(20000, 2, 0.7).strategy == "finetune_top"
    far = recommend(20000, 2, 0.1)
    assert far.strategy == "gradual_unfreeze" and "far from" in far.reason
    rows = [{"strategy": "headless", "backbone": "b", "layer": "top", "accuracy_mean": 0.80},
            {"strategy": "headless", "backbone": "b", "layer": "mid", "accuracy_mean": 0.85}]
    assert "negative transfer" in negative_transfer_warning(rows)
    rows[1]["accuracy_mean"] = 0.79
    assert negative_transfer_warning(rows) is None


@pytest.fixture(scope="module")
def compared(digits_dir: Path, cache_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "bakeoff"
    args = ["compare", str(digits_dir), "--out", str(out), "--backbones", "efficientnet_lite0", "squeezenet1_1",
            "--strategies", "headless", "headless:layer=mid", "headless_ensemble", "--seeds", "1"]
    assert main(args) == 0
    return out


def test_compare_writes_leaderboard_report_and_best(compared: Path, digits_dir: Path, capsys) -> None:
    rows = json.loads((compared / "leaderboard.json").read_text())
    assert len(rows) == 5
    size = {(r["strategy"], r["params"].get("layer", "top"), r["backbone"]): r["size_mb"] for r in rows}
    both = "efficientnet_lite0+squeezenet1_1"  # the ensemble of the two, one network each at prediction time
    assert size[("headless_ensemble", "top", both)] == pytest.approx(  # saved folders: one config.json, not two
        size[("headless", "top", "efficientnet_lite0")] + size[("headless", "top", "squeezenet1_1")], abs=0.01)
    for r in rows:
        assert {"strategy", "backbone", "accuracy_mean", "accuracy_std", "macro_f1", "train_seconds",
                "latency_ms_p50", "size_mb"} <= set(r)
        assert 0 <= r["accuracy_mean"] <= 1 and r["latency_ms_p50"] > 0 and r["size_mb"] > 1
    accs = [r["accuracy_mean"] for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert "| 1 |" in (compared / "leaderboard.md").read_text()
    assert (compared / "leaderboard.csv").read_text().startswith("strategy,backbone,accuracy_mean")
    best = json.loads((compared / "best" / "config.json").read_text())
    assert best["strategy"]["name"] == rows[0]["strategy"] and best["backbone"] == rows[0]["backbone"]
    # a second run reads every result from the cache
    capsys.readouterr()
    assert main(["compare", str(digits_dir), "--out", str(compared), "--backbones", "efficientnet_lite0",
                 "squeezenet1_1", "--strategies", "headless", "headless:layer=mid", "headless_ensemble", "--seeds",
                 "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cached_runs"] == 5 * 5  # 5 candidates x 5 folds (tiny data: cross-validation)
    assert [r["accuracy_mean"] for r in doc["leaderboard"]] == accs


def test_report_opens_in_headless_chromium(compared: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (scripts/setup.sh installs it where it can)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (compared / "report.html").resolve().as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "Strategy comparison" in dom and "id=\"leaderboard\"" in dom
    assert dom.count("data:image/png;base64,") >= 4  # accuracy/time, confusion, mistakes, feature map
    for name in ("efficientnet_lite0", "squeezenet1_1", "Winner", "Advice"):
        assert name in dom
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1200,2400", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 20  # not a blank page: text, tables and plots drawn


def test_rank_json(digits_dir: Path, cache_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["rank", str(digits_dir), "--backbones", "efficientnet_lite0", "squeezenet1_1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["ranking"]
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["logme"] >= rows[1]["logme"]
    assert all(0 <= r["knn_loo"] <= 1 and 0 < r["imagenet_confidence"] <= 1 for r in rows)


def test_train_auto_explains_its_choice(digits_dir: Path, cache_dir: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["train", str(digits_dir), "--strategy", "auto", "--out", str(tmp_path / "m"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    auto = metrics["auto"]
    assert auto["strategy"] == "headless_ensemble" and auto["params"] == {}
    assert len(auto["logme"]) == 4  # every image backbone scored on the training split
    ranked = sorted(auto["logme"], key=lambda b: -auto["logme"][b])
    assert auto["backbone"] == "+".join(ranked[:2])  # the two backbones rank puts first
    assert ranked[0] in auto["reason"] and ranked[1] in auto["reason"] and "LogME" in auto["reason"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [m["backbone"] for m in config["weights"]["members"]] == ranked[:2]


def test_default_candidates_include_the_ensemble_once() -> None:
    from transferlab.workflows.compare import Candidate, candidates_for

    default = candidates_for()
    assert Candidate("headless_ensemble", "all") in default
    assert sum(c.strategy == "headless_ensemble" for c in default) == 1
    explicit = candidates_for(["headless", "headless_ensemble:top=2"], ["efficientnet_lite0", "squeezenet1_1"])
    assert [(c.strategy, c.backbone) for c in explicit] == [
        ("headless", "efficientnet_lite0"), ("headless", "squeezenet1_1"),
        ("headless_ensemble", "efficientnet_lite0+squeezenet1_1")]
    assert not any(c.strategy == "headless_ensemble" for c in candidates_for(backbones=["efficientnet_lite0"]))
