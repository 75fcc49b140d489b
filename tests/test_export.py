"""``transferlab export``: the exported graph, run by the copyable runtime alone, predicts what the saved model
predicts; what cannot be exported exactly is refused.

Real EfficientNet-Lite0 features of scikit-learn's digits and real MiniLM; the real-data parity on hymenoptera and
sst2 for every exportable strategy is ``benchmarks/export_parity.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_runtime_only
from transferlab import runtime
from transferlab.cli import main
from transferlab.deploy.export import export_model, exportable
from transferlab.model import Model

POS = ["a wonderful , moving film", "great acting and a lovely story !", "funny , warm and brilliant",
       "i loved every minute", "a délightful and charming movie", "superb , touching and smart"]
NEG = ["a dull , boring mess", "terrible acting and a stupid plot", "i hated every minute ?",
       "tedious and badly written", "an awful , lifeless film", "painfully   slow and pointless"]


def _reviews(path: Path) -> Path:
    path.write_text("text,label\n" + "".join(f'"{t}",positive\n' for t in POS) +
                    "".join(f'"{t}",negative\n' for t in NEG))
    return path


def _runtime(export_dir: Path):  # noqa: ANN202 - the copied module, imported from the export folder
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"rt_{abs(hash(str(export_dir)))}",
                                                  export_dir / "transferlab_runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_predictions(model_dir: Path, export_dir: Path, inputs: list) -> None:
    expected = Model.load(model_dir).predict(inputs, top_k=10)
    got = _runtime(export_dir).load(export_dir).predict(inputs, top_k=10)
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert ("error" in e) == ("error" in g), (e, g)
        if "error" in e:
            continue
        assert g["label"] == e["label"]
        assert list(g["probabilities"]) == list(e["probabilities"]) or \
            np.allclose(sorted(g["probabilities"].values()), sorted(e["probabilities"].values()), atol=1e-6)
        for label, p in e["probabilities"].items():
            assert abs(g["probabilities"][label] - p) < 1e-5


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, digits_dir: Path) -> dict[str, Path]:
    from transferlab.workflows.train import train

    root = tmp_path_factory.mktemp("export")
    out = {}
    train(digits_dir, out=root / "headless", strategy="headless", val_fraction=0.25)
    out["headless"] = root / "headless"
    train(digits_dir, out=root / "frozen", strategy="frozen_head", val_fraction=0.25, params={"epochs": 5})
    out["frozen_head"] = root / "frozen"
    # SqueezeNet's Caffe preprocessing (BGR, mean subtracted, no scaling) is the other normalisation in the graph
    train(digits_dir, out=root / "squeezenet", strategy="headless", backbone="squeezenet1_1", val_fraction=0.25)
    out["squeezenet"] = root / "squeezenet"
    return out


def test_exported_image_models_predict_what_the_saved_ones_do(digits_models: dict[str, Path], digits_dir: Path,
                                                                tmp_path: Path) -> None:
    from PIL import Image

    files = sorted(digits_dir.glob("*/*.png"))[::4]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    inputs = [str(p) for p in files] + [str(junk), files[0].read_bytes(),
                                         np.asarray(Image.open(files[1]).convert("RGB"))]
    for name, model_dir in digits_models.items():
        export_dir = export_model(model_dir, tmp_path / f"{name}_onnx")
        meta = json.loads((export_dir / "export.json").read_text())
        assert meta["inputs"][0]["kind"] == "image" and meta["labels"] == Model.load(model_dir).classes
        assert {"model.onnx", "labels.json", "transferlab_runtime.py"} <= {p.name for p in export_dir.iterdir()}
        _same_predictions(model_dir, export_dir, inputs)


def test_bag_of_words_export_counts_ngrams_as_scikit_learn_does(tmp_path: Path, cache_dir: Path) -> None:
    from collections import Counter

    from transferlab.features.tfidf import _vectorizer
    from transferlab.workflows.train import train

    texts = ["Héllo,  wörld!! it's a  b c", "x", "  spaced\tout\n text ?", "ÅNGSTRÖM ångström 42 4x4", "a an"]
    import transferlab_runtime

    for kind, max_n in (("word", 3), ("char", 5)):
        vec = _vectorizer(kind, max_n).fit(texts)
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        spec = {"token_pattern": vec.token_pattern,
                "parts": [{"kind": kind, "max_n": max_n, "offset": 0, "vocabulary": terms}]}
        counter = transferlab_runtime.NgramCounter(spec)
        analyze = vec.build_analyzer()
        for t in texts:
            expected = Counter(vec.vocabulary_[g] for g in analyze(t))
            assert counter.count(t) == expected, (kind, t)

    data = _reviews(tmp_path / "reviews.csv")
    train(data, out=tmp_path / "bow", strategy="bow", task="text", val_fraction=0.25,
          params={"char_ngrams": 4})
    export_model(tmp_path / "bow", tmp_path / "bow_onnx")
    _same_predictions(tmp_path / "bow", tmp_path / "bow_onnx",
                      ["a wonderful , charming film !", "boring", "", "  tedious , awful   and DULL ?", "ok"])


@pytest.mark.slow
def test_text_headless_export_matches_and_runs_without_torch_sklearn_or_transferlab(tmp_path: Path,
                                                                                      cache_dir: Path) -> None:
    from transferlab.workflows.train import train

    data = _reviews(tmp_path / "reviews.csv")
    train(data, out=tmp_path / "m", strategy="text_headless", task="text", val_fraction=0.25)
    export_dir = export_model(tmp_path / "m", tmp_path / "m_onnx")
    texts = ["an absolutely wonderful film , i loved it", "a boring , awful waste of time", "  ",
             "what a superb and charming story " * 40]
    _same_predictions(tmp_path / "m", export_dir, texts)
    expected = [p.get("label") for p in Model.load(tmp_path / "m").predict(texts)]
    # a fresh process where torch, scikit-learn, transformers and transferlab cannot be imported at all
    preds = run_runtime_only(export_dir, f"""
        preds = load({str(export_dir)!r}).predict({texts!r})
        print(json.dumps([p.get("label") for p in preds]))
    """, tmp_path)
    assert preds == expected


def test_export_refuses_what_it_cannot_export_exactly(digits_dir: Path, tmp_path: Path, cache_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from transferlab.workflows.train import train

    train(digits_dir, out=tmp_path / "knn", strategy="headless", val_fraction=0.25, params={"classifier": "knn"})
    assert "k-NN" in (exportable(tmp_path / "knn") or "")
    assert main(["export", str(tmp_path / "knn"), "--out", str(tmp_path / "knn_onnx")]) == 2
    err = capsys.readouterr().err
    assert "cannot export" in err and "Traceback" not in err
    assert not (tmp_path / "knn_onnx").exists()
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a transferlab model folder" in capsys.readouterr().err


def test_export_cli_writes_a_folder_the_runtime_loads(digits_models: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli_onnx"
    assert main(["export", str(digits_models["headless"]), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "model.onnx" in doc["files"] and doc["size_mb"] > 1
    info = json.loads((out / "export.json").read_text())
    assert info["strategy"] == "headless" and "accuracy" in info["metrics"]
    with runtime.settings():
        assert _runtime(out).load(out).predict([b"junk"])[0]["error"].startswith("not an image")
