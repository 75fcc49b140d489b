"""The CLI end to end: train, predict --json, evaluate --json, models --json; exit codes; a warm cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferlab.cli import main
from transferlab.errors import UserError


@pytest.fixture(scope="module")
def trained(digits_dir, cache_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    assert main(["train", str(digits_dir), "--out", str(out), "--seed", "1"]) == 0
    return out


def test_train_writes_a_complete_model_dir(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "labels.json", "metrics.json", "data_report.json", "confusion_matrix.png",
            "mistakes.json"} <= names
    heads = list(trained.glob("**/head.safetensors"))  # one, or one per member of an ensemble
    assert heads and all((h.parent / "head.json").is_file() for h in heads)
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pickle"))]
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "train_seconds", "balanced_accuracy", "roc_auc", "per_class"):
        assert key in metrics
    config = json.loads((trained / "config.json").read_text())
    # no --strategy: the fast auto measured the data and chose a frozen-feature strategy, and says why
    assert config["strategy"]["name"] in ("headless", "headless_ensemble")
    assert config["strategy"]["name"] == "headless_ensemble" or config["preprocessing"]["size"] == 224
    assert metrics["auto"]["strategy"] == config["strategy"]["name"] and "LogME" in metrics["auto"]["reason"]
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


# --- the command table: one module per command, built lazily -------------------------------------------------------


def test_every_command_module_has_the_contract() -> None:
    import argparse

    from transferlab.cli import COMMANDS, command_module

    for name in COMMANDS:
        module = command_module(name)
        assert callable(module.add_parser) and callable(module.run), name
        assert isinstance(module.HELP, str) and module.HELP, name
        sub = argparse.ArgumentParser().add_subparsers(dest="command")
        module.add_parser(sub)
        assert list(sub.choices) == [name], f"{module.__name__} registers {list(sub.choices)}, not {name!r}"


@pytest.mark.parametrize("name", ["train", "predict", "evaluate", "compare", "rank", "pretrain-text", "example-data",
                                  "models", "strategies"])
def test_help_exits_0_for_each_command(name: str, capsys) -> None:
    from transferlab.cli import COMMANDS, command_module

    assert name in COMMANDS
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: transferlab {name} ")
    assert "COMMAND" not in out and command_module(name).__name__ == COMMANDS[name]  # its own page, not the listing


def test_top_level_help_lists_every_command_without_heavy_imports() -> None:
    import os
    import subprocess
    import sys

    from transferlab.cli import COMMANDS

    code = ("import sys; from transferlab.cli import main; rc = main(['--help']); "
            "print('HEAVY' if {'numpy', 'torch', 'transferlab.backbones'} & set(sys.modules) else 'LIGHT'); "
            "sys.exit(rc)")
    env = {**os.environ, "COLUMNS": "200"}  # one line per command
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("LIGHT")
    listed = [line.split()[0] for line in done.stdout.splitlines() if line[:4] == "    " and line[4:5].strip()]
    assert listed == list(COMMANDS)


def test_command_word_skips_global_options_like_argparse() -> None:
    from transferlab.cli import _command_word

    assert _command_word(["--cache-dir", "train", "rank", "x"]) == "rank"  # "train" is the option's value
    assert _command_word(["--cache-dir=/tmp/c", "--quiet", "models"]) == "models"
    assert _command_word(["--cache", "/tmp/c", "--q", "predict", "m", "x.jpg"]) == "predict"
    assert _command_word(["-h", "train"]) is None and _command_word(["--he"]) is None
    assert _command_word(["--quiet", "--", "strategies"]) == "strategies" and _command_word([]) is None


def test_global_options_reach_the_command(tmp_path: Path, capsys) -> None:
    assert main(["--cache", str(tmp_path / "c"), "--qui", "strategies", "--json"]) == 0
    names = {r["name"] for r in json.loads(capsys.readouterr().out)["strategies"]}
    assert {"headless", "frozen_head", "finetune"} <= names


def test_strategies_name_explains_one_strategy_with_its_schedule_rule(capsys) -> None:
    """``transferlab strategies finetune`` prints the whole documentation, including the data-size rule behind the
    defaults left at None; an unknown name is one line and exit 2."""
    capsys.readouterr()
    assert main(["strategies", "finetune"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("finetune [image]") and "Schedule rule" in out and "sqrt(n / 1000)" in out
    assert "lr=None" in out.splitlines()[-1]
    assert main(["strategies", "finetunes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no strategy 'finetunes'" in err[0] and "finetune_top" in err[0]


def test_bad_input_exits_2_with_one_line_on_stderr(tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["predict", str(tmp_path), "x.jpg"]) == 2  # not a model folder
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transferlab: error: ") and "config.json" in lines[0]
    assert captured.out == ""
    assert main(["predict", str(tmp_path), "x.jpg", "--top-k", "0"]) == 2  # a usage error: usage, then the reason
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: transferlab predict") and "--top-k" in err[-1] and ">= 1" in err[-1]
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_unexpected_errors_exit_1_with_one_line(monkeypatch, capsys) -> None:
    import transferlab.cli.strategies as strategies_cli

    def boom(args) -> int:
        raise RuntimeError("a bug")

    monkeypatch.delenv("TRANSFERLAB_DEBUG", raising=False)
    monkeypatch.setattr(strategies_cli, "run", boom)
    assert main(["strategies"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: a bug" in lines[0]
    monkeypatch.setenv("TRANSFERLAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["strategies"])


def test_models_table_prints_image_and_text_rows(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["name", "modality", "params", "MB", "features", "input"] and "items/s" in out[0]
    rows = {line.split()[0]: line.split() for line in out[1:]
            if line and not line.startswith((" ", "items/s", "good for"))}
    assert rows["efficientnet_lite0"][1] == "image" and rows["efficientnet_lite0"][5] == "224px"
    text = {name: r for name, r in rows.items() if r[1] == "text"}
    assert {"minilm", "glove"} <= set(text)  # the text encoders beside the image backbones
    assert all(r[5] == "-" and r[6] == "-" for r in text.values())  # no input size, no ImageNet accuracy
    assert float(text["minilm"][3]) > 80  # MB of weights on disk
    assert any(line.startswith("items/s") for line in out)
    assert any(line.strip().startswith("minilm:") for line in out)  # what each one is good for


def test_ranking_table_follows_the_rows() -> None:
    from transferlab.cli.rank import ranking_table

    image = ranking_table([{"rank": 1, "backbone": "squeezenet1_1", "logme": 1.5, "h_score": 0.25, "knn_loo": 0.5,
                            "imagenet_confidence": 0.75, "score_seconds": 0.5}])
    assert image.splitlines()[0].split()[1] == "backbone" and "imagenet_conf" in image and "0.750" in image
    text = ranking_table([{"rank": 1, "backbone": "minilm", "logme": 1.5, "h_score": 0.25, "knn_loo": 0.5,
                           "scored_rows": 200, "embed_seconds": 2.0, "score_seconds": 0.5}])
    assert text.splitlines()[0].split()[1] == "encoder" and " 200" in text and "2.50" in text


def test_predict_workflow_expands_folders_and_reads_file(trained: Path, digits_dir: Path, tmp_path: Path) -> None:
    from transferlab.workflows.predict import predict

    folder = digits_dir / "7"
    files = sorted(str(p) for p in folder.iterdir())
    listing = tmp_path / "inputs.txt"
    listing.write_text(files[0] + "\n\n" + files[1] + "\n")
    preds = predict(trained, [folder], file=listing, top_k=2)
    assert [p["input"] for p in preds] == files + files[:2]
    assert all(len(p["probabilities"]) == 2 for p in preds)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no input files"):
        predict(trained, [tmp_path / "empty"])
    with pytest.raises(UserError, match="top_k"):
        predict(trained, files, top_k=0)


def test_evaluate_refuses_data_of_the_other_modality(trained: Path, digits_dir: Path, tmp_path: Path, capsys,
                                                     recwarn, monkeypatch) -> None:
    """An image model given a CSV of texts, a text model given a folder of image folders: one line that says so,
    exit 2 (was: "no column 'path'", "no val/valid/dev/test file"). One class folder is a fair evaluation set.
    predict with a text model and a file's path: its name is classified, with a note saying so."""
    import shutil

    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text,label\n" + "".join(f"a lovely film {i},pos\na dull film {i},neg\n" for i in range(10)))
    assert main(["--quiet", "train", str(reviews), "--strategy", "bow", "--out", str(tmp_path / "texts")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(trained), str(reviews)]) == 2
    err = capsys.readouterr().err
    assert "reviews.csv: texts" in err and "classifies images" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "texts"), str(digits_dir)]) == 2
    assert "classifies texts" in capsys.readouterr().err
    one = tmp_path / "one"
    shutil.copytree(digits_dir / "3", one / "3")
    assert main(["evaluate", str(trained), str(one), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["count"] == len(list((digits_dir / "3").iterdir()))
    assert doc["balanced_accuracy"] == pytest.approx(doc["accuracy"])  # the recall of the one class present
    assert not [w for w in recwarn if "single label" in str(w.message)]
    monkeypatch.delenv("TRANSFERLAB_QUIET", raising=False)
    image = next((digits_dir / "3").iterdir())
    assert main(["predict", str(tmp_path / "texts"), str(image), "a lovely film", "--json"]) == 0
    out = capsys.readouterr()
    assert [p["input"] for p in json.loads(out.out)["predictions"]] == [str(image), "a lovely film"]
    assert f"note: {str(image)!r} is a file, but a text model reads each argument as a text" in out.err
    assert "'a lovely film'" not in out.err


def test_results_inside_the_image_folder_are_refused_before_any_work(digits_dir: Path, tmp_path: Path,
                                                                     capsys) -> None:
    """A model saved inside the image folder would be one more class (its plots its pictures) in the next run."""
    before = sorted(p.name for p in digits_dir.iterdir())
    for command in (["train", str(digits_dir), "--out", str(digits_dir / "model")],
                    ["compare", str(digits_dir), "--out", str(digits_dir / "x" / ".." / "bakeoff")],
                    ["audit", str(digits_dir), "--out", str(digits_dir)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "image folder" in err and "choose a folder outside" in err and "Traceback" not in err
    assert sorted(p.name for p in digits_dir.iterdir()) == before
    text = tmp_path / "reviews"  # a text folder is read by its file names: a model beside them is harmless
    text.mkdir()
    (text / "train.csv").write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(8)))
    assert main(["--quiet", "train", str(text), "--strategy", "bow", "--out", str(text / "model")]) == 0
