"""Zero-shot classification: ConSE from class names (real backbone, real images), attributes (synthetic features
with known signatures; the real workflow on a few dtd textures), text through the same command, and every bad input
as one line and exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, shared_dataset
from transferlab.analysis.zeroshot import (
    attribute_class_probabilities,
    conse_embedding,
    conse_probabilities,
    fit_attribute_predictors,
    near_chance,
    phrase_vector,
)
from transferlab.cli import main
from transferlab.data.attributes import read_attribute_table
from transferlab.errors import DataError, UserError
from transferlab.workflows.zeroshot import ClassName, match_folders, parse_classes

DTD_ATTRIBUTES = ROOT / "benchmarks" / "data" / "dtd_attributes.csv"


def _linked(tmp: Path, source: Path, layout: dict[str, dict[str, int]]) -> Path:
    """A folder of symlinks to the first N images of some classes of a shared set (split -> class -> N), so a test
    reads a few real images without copying any."""
    for split, classes in layout.items():
        for cls, n in classes.items():
            d = tmp / split / cls
            d.mkdir(parents=True)
            for f in sorted((source / split / cls).iterdir())[:n]:
                os.symlink(f, d / f.name)
    return tmp


def _class_folders(tmp: Path, names: list[str]) -> Path:
    """Class folders holding one (never decoded) file each: enough for errors found before any image is read."""
    for name in names:
        (tmp / name).mkdir(parents=True)
        (tmp / name / "a.jpg").write_bytes(b"not read")
    return tmp


# --- pure functions ----------------------------------------------------------------------------------------------


def test_phrase_vector_averages_words_splits_hyphens_and_reports_missing() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [5.0, 5.0]], np.float32)
    index = {"golden": 0, "retriever": 1, "of": 2, "crested": 3}
    v, missing = phrase_vector("Golden_Retriever", vectors, index)
    assert missing == [] and np.allclose(v, np.array([1, 1]) / np.sqrt(2))  # unit vectors averaged, renormalised
    v, missing = phrase_vector("golden of", vectors, index)  # a stop word is left out when others remain
    assert np.allclose(v, [1, 0])
    v, missing = phrase_vector("sulphur-crested retriever", vectors, index)  # hyphenated: its known parts
    assert missing == [] and v[0] > 0 and v[1] > 0
    v, missing = phrase_vector("golden qzxv", vectors, index)
    assert missing == ["qzxv"] and v is not None
    assert phrase_vector("qzxv", vectors, index) == (None, ["qzxv"])


def test_conse_weights_the_top_k_source_classes_by_probability() -> None:
    label_vectors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], np.float32)  # last: no vector
    p = np.array([[0.05, 0.15, 0.2, 0.6]])
    emb = conse_embedding(p, label_vectors, top_k=2)  # the 0.6 class has no vector: top 2 usable are 0.2, 0.15
    assert np.allclose(emb, [[0, 0.15 / 0.35, 0.2 / 0.35]])
    emb1 = conse_embedding(p, label_vectors, top_k=1)
    assert np.allclose(emb1, [[0, 0, 1]])
    classes = np.array([[0, 1, 0.1], [0.1, 0, 1]], np.float32)
    proba = conse_probabilities(p, label_vectors, classes, top_k=2, temperature=0.1)
    assert proba.shape == (1, 2) and np.isclose(proba.sum(), 1) and proba[0, 1] > proba[0, 0]
    # the temperature changes how sure, never which class
    flat = conse_probabilities(p, label_vectors, classes, top_k=2, temperature=10.0)
    assert flat.argmax() == proba.argmax() and flat.max() < proba.max()


def test_attribute_predictors_recover_unseen_classes_from_known_signatures() -> None:
    rng = np.random.default_rng(0)
    n_attr, dim = 5, 24
    directions = rng.normal(size=(n_attr, dim))
    unseen = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]])
    # every other signature is a seen class, so no attribute is tied to another over the seen classes
    every = np.array([[(k >> j) & 1 for j in range(n_attr)] for k in range(2**n_attr)])
    seen = np.array([s for s in every if not (s == unseen).all(axis=1).any()])

    def images(signatures: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(len(signatures)), per_class)
        x = (2.0 * signatures[labels] - 1.0) @ directions + 0.8 * rng.normal(size=(len(labels), dim))
        return x, labels

    x_seen, y_seen = images(seen, 8)
    predictors = fit_attribute_predictors(x_seen, seen[y_seen], seed=0)
    assert predictors.learnable.all()
    x_new, y_new = images(unseen, 30)
    attr = predictors.predict_proba(x_new)
    assert np.mean((attr > 0.5) == unseen[y_new]) > 0.9
    for method in ("dap", "mean", "cosine"):
        proba = attribute_class_probabilities(attr, unseen, method=method)
        assert np.allclose(proba.sum(axis=1), 1)
        assert np.mean(proba.argmax(axis=1) == y_new) > 0.95, method
    # an attribute constant over the seen classes cannot be learned; scoring leaves it out
    seen_const = seen.copy()
    seen_const[:, 4] = 0
    partial = fit_attribute_predictors(x_seen, seen_const[y_seen])
    assert partial.learnable.tolist() == [True, True, True, True, False]
    assert np.allclose(partial.predict_proba(x_new)[:, 4], 0.5)
    with pytest.raises(ValueError, match="unknown method"):
        attribute_class_probabilities(attr, unseen, method="nearest")


def test_near_chance_rule() -> None:
    assert near_chance(0.6, 2) and not near_chance(0.7, 2)
    assert near_chance(0.5, 3) and not near_chance(0.55, 3)


def test_class_names_parse_and_match_folders() -> None:
    names = parse_classes("cat,dog")
    assert names == [ClassName("cat", "cat"), ClassName("dog", "dog")]
    assert parse_classes("ants=ant, bees = bee")[1] == ClassName("bees", "bee")
    mapping, unmatched = match_folders(["cats", "dogs", "Horses", "zebra_crossing"], parse_classes("cat,dog,horse"))
    assert mapping == {"cats": "cat", "dogs": "dog", "Horses": "horse"} and unmatched == ["zebra_crossing"]
    for bad in ("cat", "cat,cat", "cat,,dog"):
        with pytest.raises(UserError):
            parse_classes(bad)


@pytest.mark.parametrize("text, message", [
    ("class\nbanded\nbubbly\n", "no attribute columns"),
    ("class,striped,round\nbanded,1,0\nbubbly,0,maybe\n", "'maybe' is not binary"),
    ("class,striped,round\nbanded,1,0\nbanded,0,1\n", "appears twice"),
    ("class,striped,round\nbanded,1\nbubbly,0,1\n", "1 values for 2 attributes"),
    ("class,striped,striped\nbanded,1,0\nbubbly,0,1\n", "appears twice in the header"),
    ("class,striped\nbanded,1\n", "at least two classes"),
    ("", "empty"),
])
def test_bad_attribute_tables_are_data_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "attrs.csv"
    f.write_text(text)
    with pytest.raises(DataError, match=message):
        read_attribute_table(f)


def test_attribute_table_reads_comments_and_yes_no(tmp_path: Path) -> None:
    f = tmp_path / "attrs.csv"
    f.write_text("# where these come from\nclass,striped,round\nbanded,yes,no\n\nbubbly,0,1\n")
    table = read_attribute_table(f)
    assert table.classes == ["banded", "bubbly"] and table.attributes == ["striped", "round"]
    assert table.matrix.tolist() == [[1, 0], [0, 1]] and table.find("BANDED") == "banded"
    assert read_attribute_table(DTD_ATTRIBUTES).matrix.shape == (10, 15)


# --- the command: bad input is one line and exit 2 -------------------------------------------------------------


@pytest.mark.parametrize("csv_text, extra, message", [
    ("class,striped,round\nbanded,1,0\nbubbly,0,2\ncracked,1,1\n", [], "'2' is not binary"),
    ("class\nbanded\nbubbly\n", [], "no attribute columns"),
    ("class,striped,round\nbanded,1,0\nbubbly,0,1\n", [], "no row for class(es) cracked"),
    ("class,striped,round\nbanded,1,0\nbubbly,0,1\ncracked,1,1\n", ["--unseen", "dotted"], "--unseen dotted"),
    ("class,striped,round\nbanded,1,0\nbubbly,0,1\ncracked,1,1\n", [], "at least two unseen classes"),
    ("class,striped,round\nbanded,1,0\nbubbly,0,1\ncracked,1,1\nzigzag,1,0\nwavy,1,0\n", [], "the same attributes"),
])
def test_bad_attribute_input_exits_2_with_one_line(tmp_path: Path, capsys, csv_text: str, extra: list[str],
                                                   message: str) -> None:
    data = _class_folders(tmp_path / "data", ["banded", "bubbly", "cracked"])
    attrs = tmp_path / "attrs.csv"
    attrs.write_text(csv_text)
    capsys.readouterr()
    assert main(["zeroshot", str(data), "--attributes", str(attrs), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_class_name_without_word_vector_exits_2_naming_it(tmp_path: Path, capsys) -> None:
    data = _class_folders(tmp_path / "data", ["cats", "dogs"])
    capsys.readouterr()
    for words in ([], ["--words", "glove"]):  # MiniLM (the default) embeds any text, but a typo is still refused
        assert main(["zeroshot", str(data), "--classes", "cat,qzxvwk", *words]) == 2
        err = capsys.readouterr().err
        assert "'qzxvwk'" in err and "no word vector" in err and "'cat'" not in err
        assert len(err.strip().splitlines()) == 1
        # a multi-word name names the word that has no vector
        assert main(["zeroshot", str(data), "--classes", "cat,fluffy qzxvwk dog", *words]) == 2
        assert "'qzxvwk'" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, capsys) -> None:
    data = _class_folders(tmp_path / "data", ["cats", "dogs"])
    assert main(["zeroshot", str(data), "--classes", "a,b", "--attributes", "x.csv"]) == 2
    assert main(["zeroshot", str(data), "--unseen", "cats"]) == 2
    assert "--unseen and --images go with --attributes" in capsys.readouterr().err
    assert main(["zeroshot", str(tmp_path / "missing")]) == 2


# --- real models on real data ----------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_conse_on_real_hymenoptera_images(tmp_path: Path, cache_dir: Path, capsys) -> None:
    data = _linked(tmp_path / "hym", shared_dataset("hymenoptera"), {"val": {"ants": 8, "bees": 8}})
    capsys.readouterr()
    assert main(["zeroshot", str(data / "val"), "--classes", "ant,bee", "--words", "glove", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "conse" and doc["classes"] == ["ant", "bee"] and doc["chance"] == 0.5
    assert doc["settings"]["words"] == "glove"
    assert len(doc["predictions"]) == 16 and doc["count"] == 16
    for p in doc["predictions"]:
        assert set(p) >= {"path", "label", "probabilities", "true_label"}
        assert np.isclose(sum(p["probabilities"].values()), 1, atol=1e-4)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
    assert doc["accuracy"] >= 0.8  # ConSE with Lite0 gets almost all of them; chance is 0.5
    # the default: MiniLM sentence embeddings of the names instead of GloVe (the folder names, plurals included)
    capsys.readouterr()
    assert main(["zeroshot", str(data / "val"), "--json"]) == 0  # the folder names
    minilm = json.loads(capsys.readouterr().out)
    assert minilm["classes"] == ["ants", "bees"] and minilm["settings"]["words"] == "minilm"
    assert minilm["accuracy"] >= 0.8
    # the class names swapped onto the other folders: the same images now score near zero
    capsys.readouterr()
    assert main(["zeroshot", str(data / "val"), "--classes", "ants=bee,bees=ant", "--json"]) == 0
    swapped = json.loads(capsys.readouterr().out)
    assert swapped["accuracy"] <= 0.2 and "below chance" in swapped["advice"]


@pytest.mark.shared_data
def test_attribute_zeroshot_on_real_textures(tmp_path: Path, cache_dir: Path, capsys) -> None:
    classes = read_attribute_table(DTD_ATTRIBUTES).classes
    unseen = ["banded", "bubbly", "cracked"]
    layout = {"train": {c: 8 for c in classes}, "val": {c: 6 for c in unseen}}
    data = _linked(tmp_path / "dtd", shared_dataset("dtd_subset"), layout)
    capsys.readouterr()
    assert main(["zeroshot", str(data), "--attributes", str(DTD_ATTRIBUTES), "--unseen", ",".join(unseen),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["unseen_classes"] == unseen and doc["train_images"] == 7 * 8
    assert doc["classes"] == unseen and doc["count"] == 18 and np.isclose(doc["chance"], 1 / 3)
    assert {p["label"] for p in doc["predictions"]} <= set(unseen)
    assert {p["true_label"] for p in doc["predictions"]} == set(unseen)
    assert [a["attribute"] for a in doc["attributes"]] == read_attribute_table(DTD_ATTRIBUTES).attributes
    assert doc["accuracy"] > 1 / 3  # held-out textures recognised from their description alone, above chance


def test_text_zeroshot_through_the_same_command(tmp_path: Path, cache_dir: Path, capsys) -> None:
    f = tmp_path / "news.csv"
    rows = [("The striker scored twice as the team won the cup final", "sports"),
            ("The coach praised the goalkeeper after the match", "sports"),
            ("Shares fell as the bank reported lower quarterly profits", "business"),
            ("The company agreed to buy its rival for two billion dollars", "business")]
    f.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    capsys.readouterr()
    assert main(["zeroshot", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "text" and doc["method"] == "text_zeroshot" and doc["count"] == 4
    assert [p["text"] for p in doc["predictions"]] == [t for t, _ in rows]
    assert doc["accuracy"] == 1.0
