"""Text classification: data loading and its bad inputs, the strategy contract, save/load, the CLI."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, shared_dataset
from transferlab.cli import main
from transferlab.data.texts import TextDataset, looks_like_text_data, read_text_file, resolve_text_data
from transferlab.errors import DataError, UserError
from transferlab.model import Model
from transferlab.strategies import make_strategy, strategy_names

os.environ.setdefault("HF_HUB_OFFLINE", "1")

POS = ["a wonderful , moving film", "great acting and a lovely story", "funny , warm and brilliant",
       "i loved every minute", "a delightful and charming movie", "superb , touching and smart"]
NEG = ["a dull , boring mess", "terrible acting and a stupid plot", "i hated every minute",
       "tedious and badly written", "an awful , lifeless film", "painfully slow and pointless"]


def _rows(n: int = 200, seed: int = 0) -> list[tuple[str, str]]:
    """200 rows of sst2 when the shared datasets exist, else a tiny synthetic sentiment set."""
    path = SHARED / "sst2" / "train.csv"
    if path.exists():
        with open(path, encoding="utf-8", newline="") as f:
            rows = [(r["text"], r["label"]) for r in csv.DictReader(f)]
        random.Random(seed).shuffle(rows)
        return rows[:n]
    rng = random.Random(seed)
    return [(rng.choice(POS if i % 2 else NEG) + f" ({i})", "positive" if i % 2 else "negative") for i in range(n)]


def _write_csv(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8", header: str = "text,label") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(header + "\n")
        w = csv.writer(f)
        for row in rows:
            w.writerow(row)
    return path


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("text") / "reviews.csv", _rows())


# --- data --------------------------------------------------------------------------------------------------------
def test_bom_csv_reads_header(tmp_path: Path):
    p = _write_csv(tmp_path / "bom.csv", [("good film", "pos"), ("bad film", "neg")], encoding="utf-8-sig")
    ds = read_text_file(p)
    assert ds.texts == ["good film", "bad film"] and ds.labels == ["pos", "neg"]


def test_latin1_csv_is_decoded_and_noted(tmp_path: Path):
    from transferlab.data.report import DataReport

    p = _write_csv(tmp_path / "latin.csv", [("crème brûlée était très bon", "pos"), ("mauvais", "neg")],
                   encoding="latin-1")
    report = DataReport(source=str(p))
    ds = read_text_file(p, report=report)
    assert ds.texts[0] == "crème brûlée était très bon"
    assert any("not valid UTF-8" in n for n in report.notes)


def test_empty_texts_and_missing_labels_are_reported(tmp_path: Path):
    rows = [("good", "pos"), ("", "neg"), ("   ", "pos"), ("bad", ""), ("fine", "pos"), ("awful", "neg")] * 3
    train_ds, eval_ds, report = resolve_text_data(_write_csv(tmp_path / "d.csv", rows), val_fraction=0.34)
    reasons = sorted({s["reason"] for s in report.skipped})
    assert reasons == ["empty text", "missing label"]
    assert len(report.skipped) == 9
    assert len(train_ds) + len(eval_ds) == 9
    assert all(":" in s["path"] for s in report.skipped)  # file:line


def test_missing_column_is_a_clear_error(tmp_path: Path):
    p = _write_csv(tmp_path / "d.csv", [("good", "pos"), ("bad", "neg")], header="sentence,label")
    with pytest.raises(DataError, match="no column 'text'.*--text-column"):
        resolve_text_data(p)
    train_ds, _, _ = resolve_text_data(_write_csv(tmp_path / "e.csv", [("good", "pos"), ("bad", "neg")] * 3,
                                                  header="sentence,label"), text_column="sentence")
    assert train_ds.classes == ["neg", "pos"]


def test_one_class_is_an_error(tmp_path: Path):
    with pytest.raises(DataError, match="at least two classes"):
        resolve_text_data(_write_csv(tmp_path / "d.csv", [("good", "pos"), ("fine", "pos"), ("ok", "pos")]))


def test_folder_jsonl_and_tsv(tmp_path: Path):
    d = tmp_path / "folder"
    d.mkdir()
    _write_csv(d / "train.csv", [("good", "pos"), ("bad", "neg")] * 3)
    _write_csv(d / "dev.csv", [("nice", "pos"), ("poor", "neg"), ("meh", "unknown")])
    train_ds, eval_ds, report = resolve_text_data(d)
    assert len(train_ds) == 6 and eval_ds.labels == ["pos", "neg"]
    assert "does not occur in the training split" in report.skipped[0]["reason"]
    assert looks_like_text_data(d) and not looks_like_text_data(tmp_path)
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in [("a", "x"), ("b", "y")] * 3))
    assert len(read_text_file(jl)) == 6 and looks_like_text_data(jl)
    tsv = tmp_path / "d.tsv"
    tsv.write_text("label\ttext\nx\thello, world\ny\tbye\n")
    assert read_text_file(tsv).texts == ["hello, world", "bye"]


# --- strategies --------------------------------------------------------------------------------------------------
def test_text_strategies_registered_and_follow_contract():
    names = strategy_names("text")
    assert {"bow", "text_headless", "text_zeroshot"} <= set(names)
    for name in names:
        s = make_strategy(name, modality="text")
        assert s.modality == "text"
        assert not hasattr(s, "classes_")
        assert s.clone().get_params() == s.get_params()


def test_bow_fit_save_load_round_trip(text_csv: Path, tmp_path: Path, cache_dir: Path):
    from transferlab.workflows.train import train

    result = train(text_csv, task="text", out=tmp_path / "bow", strategy="bow", params={"char_ngrams": 4})
    assert set(result.metrics) >= {"accuracy", "macro_f1", "train_seconds"}
    files = {p.name for p in (tmp_path / "bow").iterdir()}
    assert {"config.json", "labels.json", "tfidf.json", "tfidf.safetensors", "head.json", "metrics.json",
            "data_report.json"} <= files
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    model = Model.load(tmp_path / "bow")
    texts = [t for t, _ in _rows()[:20]]
    proba, ok, failures = model.predict_proba(texts + [""])
    assert ok == list(range(20)) and failures == {20: "empty text"}
    ds = TextDataset.from_texts(texts)
    assert np.allclose(proba, result.model.predictor.predict_proba(texts)[0], atol=1e-5)
    from transferlab.strategies.text_bow import TextBow

    refit = TextBow(char_ngrams=4).fit(resolve_text_data(text_csv)[0])
    assert np.allclose(refit.predict_proba(ds), proba, atol=1e-4)


def test_headless_and_zeroshot_round_trip(tmp_path: Path, cache_dir: Path):
    from transferlab.workflows.train import train

    rows = [(t, "positive") for t in POS] + [(t, "negative") for t in NEG]
    data = _write_csv(tmp_path / "tiny.csv", rows * 2)
    for strategy in ("headless", "zeroshot"):
        result = train(data, task="text", out=tmp_path / strategy, strategy=strategy, val_fraction=0.25)
        assert result.metrics["accuracy"] >= 0.75, (strategy, result.metrics["accuracy"])
        model = Model.load(tmp_path / strategy)
        assert model.config["strategy"]["name"] == f"text_{strategy}"
        preds = model.predict(["an absolutely wonderful film", "a boring , awful waste of time"])
        assert [p["label"] for p in preds] == ["positive", "negative"]


@pytest.mark.parametrize("encoder", ["minilm", "mpnet"])
def test_hybrid_round_trip(encoder: str, tmp_path: Path, cache_dir: Path):
    from transferlab.backbones import get_backbone
    from transferlab.workflows.train import train

    if not get_backbone(encoder).is_installed():
        pytest.skip(f"{encoder} is not installed (scripts/setup.sh assembles it)")
    rows = [(t, "positive") for t in POS] + [(t, "negative") for t in NEG]
    data = _write_csv(tmp_path / "tiny.csv", rows * 2)
    result = train(data, task="text", out=tmp_path / "hybrid", strategy="hybrid", val_fraction=0.25,
                   params={"min_df": 1, "max_df": 1.0, "encoder": encoder, "naive_bayes": 0.5})
    assert result.model.config["strategy"]["name"] == "text_hybrid"
    # the saved model names its encoder, and the loader embeds with that one (the probabilities below agree)
    assert result.model.config["weights"]["encoder"] == get_backbone(encoder).model_id
    assert result.metrics["accuracy"] >= 0.75
    files = {p.name for p in (tmp_path / "hybrid").iterdir()}
    assert {"tfidf.json", "tfidf.safetensors", "head.json", "naive_bayes.safetensors"} <= files
    assert result.model.config["weights"]["naive_bayes"]["weight"] == 0.5
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    model = Model.load(tmp_path / "hybrid")
    texts = ["an absolutely wonderful film", "a boring , awful waste of time"]
    assert [p["label"] for p in model.predict(texts)] == ["positive", "negative"]
    assert np.allclose(model.predict_proba(texts)[0], result.model.predictor.predict_proba(texts)[0], atol=1e-5)
    with pytest.raises(UserError):
        make_strategy("text_hybrid", modality="text", max_df=0).fit(TextDataset.from_texts(texts, ["a", "b"]))
    # two texts per class: too few for the 3-fold check of the naive Bayes weight, so the regression stays alone
    few = make_strategy("text_hybrid", modality="text", min_df=1, max_df=1.0, encoder=encoder).fit(
        TextDataset.from_texts([*POS[:2], *NEG[:2]], ["positive"] * 2 + ["negative"] * 2))
    assert few.naive_bayes_ == 0 and few.nb_head_ is None


def test_hybrid_naive_bayes_blend_on_newsgroups(cache_dir: Path):
    """newsgroups20 (2000 posts, 20 topics): text_hybrid's default chooses a naive Bayes weight by cross-validation
    on train, and the blend beats the regression alone on the test split (MiniLM on the first 32 tokens: 0.721 ->
    0.761, weight 0.75; on 256 tokens, the default: 0.7675 -> 0.7805);
    the saved naive Bayes head gives scikit-learn's ComplementNB probabilities (to float32 precision)."""
    from sklearn.naive_bayes import ComplementNB

    from transferlab.heads import sparse_linear_proba
    from transferlab.strategies.text_hybrid import NB_WEIGHTS

    root = shared_dataset("newsgroups20")
    train, test = read_text_file(root / "train.csv"), read_text_file(root / "test.csv")
    # MiniLM reads the first 32 tokens of each post (not 256): 8x less embedding time, the same lesson
    blended = make_strategy("text_hybrid", modality="text", max_length=32).fit(train)
    scores = blended.nb_scores_
    assert set(scores) == set(NB_WEIGHTS) and blended.naive_bayes_ > 0, scores
    assert scores[blended.naive_bayes_] == max(scores.values()) > scores[0.0], scores
    truth = np.asarray(test.labels)
    blend = np.asarray(blended.classes_)[blended.predict_proba(test).argmax(1)]
    # the regression alone is what naive_bayes=0 fits (the same head, without the average)
    alone = sparse_linear_proba(blended.head_, blended._text_features(test.texts))
    acc_blend, acc_alone = np.mean(blend == truth), np.mean(np.asarray(blended.classes_)[alone.argmax(1)] == truth)
    assert acc_blend >= acc_alone + 0.005, (acc_blend, acc_alone)
    assert make_strategy("text_hybrid", modality="text", naive_bayes=0)._choose_nb_weight([], np.zeros(0), None) == 0
    tfidf = blended.featurizer_.transform(test.texts[:300])
    labels = np.asarray([blended.classes_.index(v) for v in train.labels])
    reference = ComplementNB(alpha=blended.nb_alpha).fit(blended.featurizer_.transform(train.texts), labels)
    assert np.allclose(sparse_linear_proba(blended.nb_head_, tfidf), reference.predict_proba(tfidf), atol=1e-4)


# --- CLI ---------------------------------------------------------------------------------------------------------
def test_cli_train_predict_evaluate_json(text_csv: Path, tmp_path: Path, cache_dir: Path,
                                         capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "m"
    assert main(["--quiet", "train", str(text_csv), "--strategy", "bow", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "train_seconds"} <= set(doc)
    assert json.loads((out / "config.json").read_text())["task"] == "text"
    inputs = tmp_path / "texts.txt"
    inputs.write_text("a truly dreadful film\n\nan inspiring masterpiece\n")
    assert main(["--quiet", "predict", str(out), "what a great movie", "--file", str(inputs), "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["input"] for p in preds] == ["what a great movie", "a truly dreadful film", "an inspiring masterpiece"]
    assert all(p["label"] in ("positive", "negative") and p["probabilities"] for p in preds)
    assert main(["--quiet", "evaluate", str(out), str(text_csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.8  # its own training data, mostly


def test_cli_bad_text_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    p = _write_csv(tmp_path / "d.csv", [("good", "pos"), ("bad", "neg")], header="sentence,label")
    assert main(["--quiet", "train", str(p), "--task", "text", "--strategy", "bow", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no column 'text'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    q = _write_csv(tmp_path / "one.csv", [("good", "pos"), ("fine", "pos")])
    assert main(["--quiet", "train", str(q), "--strategy", "bow"]) == 2
    assert "at least two classes" in capsys.readouterr().err
    assert main(["--quiet", "train", str(q), "--task", "text", "--strategy", "nope"]) == 2
    assert "unknown text strategy" in capsys.readouterr().err
    assert main(["--quiet", "train", str(p), "--strategy", "bow"]) == 2  # no text column: read as images
    assert "'bow' is a strategy for text" in capsys.readouterr().err


def test_cli_bad_parameter_values_and_out_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A --param value of the wrong type, and an --out that is an existing file, are bad input: one line naming
    the parameter or the file, exit 2, before any training; the file at --out is left as it was."""
    data = _write_csv(tmp_path / "d.csv", _rows(20))
    for param, message in (("C=abc", "parameter C must be a number, got 'abc'"),
                           ("word_ngrams=2.5", "parameter word_ngrams must be a whole number, got 2.5"),
                           ("max_features=[1]", "parameter max_features must be a whole number or null")):
        assert main(["--quiet", "train", str(data), "--strategy", "bow", "--param", param]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["--quiet", "compare", str(data), "--strategies", "bow:C=abc", "--seeds", "1"]) == 2
    assert "parameter C must be a number" in capsys.readouterr().err
    with pytest.raises(UserError, match="must be a number"):
        make_strategy("bow", "text", C="abc")
    assert make_strategy("bow", "text", C=1, max_features=None).C == 1  # an int is a number; None where allowed
    # a yes/no parameter: `gradual=False` reaches the strategy as the string "False", which Python reads as true
    assert main(["--quiet", "train", str(data), "--strategy", "text_finetune", "--param", "gradual=False"]) == 2
    assert "parameter gradual must be true or false (lower case), got 'False'" in capsys.readouterr().err
    with pytest.raises(UserError, match="parameter bf16 must be true or false or null"):
        make_strategy("text_fewshot", "text", bf16="no")
    assert make_strategy("text_finetune", "text", gradual=True, train_word_embeddings=0).gradual is True
    # vocabulary bounds no word can meet: our words, not scikit-learn's
    for param, message in (("max_features=0", "max_features must be >= 1, or null for no limit, got 0"),
                           ("min_df=1000", "min_df=1000 asks for words in at least 1000 of the")):
        assert main(["--quiet", "train", str(data), "--strategy", "bow", "--param", param]) == 2
        assert message in capsys.readouterr().err
    # a seed outside numpy's range: a usage error before any work, from --seed and from --param seed
    assert main(["--quiet", "train", str(data), "--strategy", "bow", "--seed", "-1"]) == 2
    assert "--seed: must be between 0 and 4294967295, got -1" in capsys.readouterr().err
    assert main(["--quiet", "train", str(data), "--strategy", "bow", "--param", "seed=-1"]) == 2
    assert "parameter seed must be between 0 and 4294967295" in capsys.readouterr().err
    mine = tmp_path / "mine.txt"
    mine.write_text("keep me")
    model = tmp_path / "m"
    assert main(["--quiet", "train", str(data), "--strategy", "bow", "--out", str(model)]) == 0
    for argv in (["train", str(data), "--strategy", "bow", "--out", str(mine)],
                 ["evaluate", str(model), str(data), "--out", str(mine)],
                 ["compare", str(data), "--strategies", "bow", "--seeds", "1", "--out", str(mine)],
                 ["audit", str(data), "--backbone", "glove", "--out", str(mine)],
                 ["export", str(model), "--out", str(mine)]):
        capsys.readouterr()
        assert main(["--quiet", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert "a file is in the way" in err and str(mine) in err and len(err.strip().splitlines()) == 1, err
    assert mine.read_text() == "keep me"


def test_cli_damaged_model_folder_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A model folder with a missing, truncated or malformed file, or class names that do not match its outputs,
    is said to be damaged, by name (predict exits 2; serve refuses it), instead of a library error or labels
    shifted onto the wrong probabilities."""
    import shutil

    from transferlab.deploy.backends import open_backend

    model = tmp_path / "m"
    assert main(["--quiet", "train", str(_write_csv(tmp_path / "d.csv", _rows(20))), "--strategy", "bow",
                 "--out", str(model)]) == 0
    damages = {
        "truncated_weights": lambda d: (d / "tfidf.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{"),
        "head_missing": lambda d: (d / "head.safetensors").unlink(),
        "config_a_list": lambda d: (d / "config.json").write_text("[1, 2]"),
        "labels_an_object": lambda d: (d / "labels.json").write_text('{"a": 1}'),
        "labels_too_few": lambda d: (d / "labels.json").write_text('["only"]'),
    }
    for name, damage in damages.items():
        d = tmp_path / name
        shutil.copytree(model, d)
        damage(d)
        capsys.readouterr()
        assert main(["--quiet", "predict", str(d), "a fine film"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(d) in err[0] and "damaged model folder" in err[0], (name, err)
    with pytest.raises(UserError, match="damaged model folder"):
        open_backend(tmp_path / "config_a_list")
