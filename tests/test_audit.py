"""The label audit: the pure analysis on arrays, then `transferlab audit` end to end on real images (digits) and a
real text sample (sst2) with labels flipped on purpose, and bad input as one line with exit code 2."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dataset
from transferlab.analysis.audit import (
    find_data_issues,
    fold_count,
    out_of_fold_probabilities,
    precision_at_k,
    rank_label_issues,
)
from transferlab.cli import main
from transferlab.errors import DataError

LABEL_COLUMNS = ["rank", "path", "given_label", "suggested_label", "score", "is_label_issue"]


def _blobs(n_per_class: int = 60, flips: int = 9, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three well separated Gaussian classes in 16-d, with ``flips`` labels moved to the next class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (3, 16))
    x = np.concatenate([c + rng.normal(0, 1, (n_per_class, 16)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    flipped = rng.choice(len(y), flips, replace=False)
    y[flipped] = (y[flipped] + 1) % 3
    return x, y, flipped


def test_flipped_labels_rank_first_on_separable_features():
    x, y, flipped = _blobs()
    oof = out_of_fold_probabilities(x, y, seed=0)
    assert oof.proba.shape == (len(y), 3) and np.allclose(oof.proba.sum(axis=1), 1)
    assert oof.folds == 5 and oof.C in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    issues = rank_label_issues(y, oof.proba)
    precision, recall = precision_at_k(issues.order, flipped)
    assert precision == recall == 1.0
    assert len(set(flipped) & set(np.flatnonzero(issues.is_issue))) >= len(flipped) - 1  # flagged, give or take
    assert issues.is_issue.sum() <= len(flipped) + 3  # confident learning does not flag half the data
    # the flipped items are suggested their original class
    assert np.array_equal(issues.suggested[flipped], (y[flipped] - 1) % 3)
    # the ranking is the flagged items first, each part by rising quality
    flagged = issues.is_issue[issues.order]
    assert not np.any(flagged[1:] & ~flagged[:-1])
    q = issues.quality[issues.order]
    assert np.all(np.diff(q[flagged]) >= 0) and np.all(np.diff(q[~flagged]) >= 0)


def test_out_of_fold_is_reproducible_and_really_out_of_fold():
    x, y, _ = _blobs(flips=0)
    a = out_of_fold_probabilities(x, y, C=0.1, seed=3).proba
    b = out_of_fold_probabilities(x, y, C=0.1, seed=3).proba
    assert np.array_equal(a, b)
    # an item far from its class gets little probability for it: it was not in the model that scored it
    x2 = x.copy()
    x2[0] = x[y == 2].mean(axis=0)  # labelled class 0, placed in the middle of class 2
    p = out_of_fold_probabilities(x2, y, C=0.1, seed=3).proba
    assert p[0, 0] < 0.2 and p[0].argmax() == 2


def test_fold_count_and_class_checks():
    y = np.array([0, 0, 0, 1, 1])
    assert fold_count(y, 5) == 2  # the smallest class decides
    with pytest.raises(DataError, match="single example"):
        fold_count(np.array([0, 0, 0, 1]), 5)
    with pytest.raises(DataError, match="two classes"):
        fold_count(np.array([0, 0, 0]), 5)
    with pytest.raises(DataError, match="at least 2"):
        fold_count(y, 1)


def test_datalab_finds_duplicates_and_outliers():
    x, y, _ = _blobs(n_per_class=40, flips=0, seed=1)
    x[5] = x[4] + 1e-6  # a near-exact copy, same class
    x[50] = x[4] + 1e-6  # and one in another class
    x[100] = x.mean(axis=0) + 25.0  # far from everything
    issues = find_data_issues(x, y)
    groups = issues.duplicate_groups()
    assert [4, 5, 50] in groups
    assert issues.is_outlier[100] and issues.outlier_score[100] == issues.outlier_score.min()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cli_audit_images_finds_flipped_digits(tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]):
    from transferlab.examples import write_digits

    root = write_digits(tmp_path / "digits", per_class=20, seed=1)
    rng = random.Random(0)
    files = sorted(root.glob("*/*.png"))
    moved: dict[str, str] = {}  # new path -> the digit it shows
    for f in rng.sample(files, 8):  # 8 of 200 labels wrong: the file moved into another digit's folder
        wrong = str((int(f.parent.name) + rng.randint(1, 9)) % 10)
        target = root / wrong / f.name
        shutil.move(f, target)
        moved[str(target)] = f.parent.name
    out = tmp_path / "audit"
    assert main(["audit", str(root), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "image" and doc["items"] == 200 and doc["backbone"] == "efficientnet_lite0"
    rows = _read_csv(out / "label_issues.csv")
    assert list(rows[0])[:6] == LABEL_COLUMNS and len(rows) == 200
    top = [r["path"] for r in rows[:12]]
    found = len(set(top) & set(moved))
    assert found >= 6, f"only {found} of 8 flipped digits in the top 12"
    # the suggested label of a found flip is the digit it really shows (its original folder)
    right = sum(r["suggested_label"] == moved[r["path"]] for r in rows[:12] if r["path"] in moved)
    assert 2 * right >= found, (right, found)  # measured 4 of 6; by chance 1 in 9
    flagged = {r["path"]: r for r in rows if r["is_label_issue"] == "True"}
    assert doc["label_issues"] == len(flagged) >= 4
    assert sum(doc["per_class"][c]["label_issues"] for c in doc["per_class"]) == len(flagged)
    scores = [float(r["score"]) for r in rows if r["is_label_issue"] == "True"]
    assert scores == sorted(scores)
    sheet = (out / "contact_sheet.html").read_text()
    assert sheet.count("data:image/jpeg;base64,") >= min(len(flagged), 30)
    assert (out / "contact_sheet.png").stat().st_size > 10_000
    for name in ("near_duplicates.csv", "outliers.csv", "audit.json", "data_report.json"):
        assert (out / name).exists()
    assert json.loads((out / "audit.json").read_text())["label_issues"] == doc["label_issues"]


def test_cli_audit_texts_finds_flipped_sst2(tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]):
    sst2 = shared_dataset("sst2")
    with (sst2 / "train.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(0)
    sample = rng.sample(rows, 300)
    flipped = set(rng.sample(range(len(sample)), 15))
    classes = sorted({r["label"] for r in rows})
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i, r in enumerate(sample):
            label = r["label"] if i not in flipped else next(c for c in classes if c != r["label"])
            w.writerow([r["text"], label])
    out = tmp_path / "audit"
    assert main(["audit", str(data), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "text" and doc["items"] == 300
    from transferlab.backbones.mpnet import available

    assert doc["backbone"] == ("mpnet" if available() else "minilm")  # the strongest affordable encoder
    ranked = _read_csv(out / "label_issues.csv")
    assert list(ranked[0])[:3] == ["rank", "path", "text"] and "given_label" in ranked[0]
    # file:line of each row; line 1 is the header, so data row i is on line i + 2
    lines = [int(r["path"].rsplit(":", 1)[1]) - 2 for r in ranked[:30]]
    found = len(set(lines) & flipped)
    # the encoder + logistic regression is far from perfect out of fold on 240 training texts, so clean but hard
    # sentences compete with the flips; chance would put 1.5 of the 15 in the top 30 (measured: 9, with mpnet)
    assert found >= 6, f"only {found} of 15 flipped sentiment labels in the top 30"
    score = {int(r["path"].rsplit(":", 1)[1]) - 2: float(r["score"]) for r in ranked}
    flipped_mean = np.mean([score[i] for i in flipped])
    clean_mean = np.mean([v for i, v in score.items() if i not in flipped])
    assert flipped_mean < clean_mean - 0.15, (flipped_mean, clean_mean)
    assert all(r["text"] == sample[int(r["path"].rsplit(":", 1)[1]) - 2]["text"] for r in ranked[:30])
    assert "<table>" in (out / "contact_sheet.html").read_text()


def test_cli_audit_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    one = tmp_path / "one"
    (one / "cats").mkdir(parents=True)
    for i in range(3):
        (one / "cats" / f"{i}.png").write_bytes(b"not read before the class check")
    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "single.csv"
    single.write_text("text,label\ngood film,pos\nbad film,neg\nfine film,pos\n")
    for data in (one, empty, single, tmp_path / "missing"):
        capsys.readouterr()
        assert main(["audit", str(data), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("transferlab: error:") and "\n" not in err, err
    assert main(["audit", str(single), "--out", str(tmp_path / "o"), "--folds", "1"]) == 2


def test_cli_audit_help(capsys: pytest.CaptureFixture[str]):
    assert main(["audit", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: transferlab audit ") and "label_issues.csv" in out
