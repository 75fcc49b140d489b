"""The public prediction API: a saved model predicts from any input (paths, file bytes, PIL images, arrays; texts),
through a feature cache it reads but never writes, with no training code loaded.

Real EfficientNet-Lite0 features of scikit-learn's digits and real MiniLM embeddings; each model trains in its own
temporary cache, so the cache file checked is the one the prediction would have grown.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import transferlab
from transferlab import runtime
from transferlab.cache import FeatureCache

PER_CLASS = 12  # digits written per class for training (80% train, 20% eval)


def _file_state(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _unseen_digits(out: Path, used: set[int], per_class: int = 10) -> tuple[list[Path], list[str]]:
    """``per_class`` digits per class that training never saw, drawn like ``write_digits`` and then shifted by one
    pixel and saved at another size, so their bytes match no cached file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    out.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for label in range(10):
        fresh = [int(i) for i in np.flatnonzero(digits.target == label) if int(i) not in used][:per_class]
        for i in fresh:
            pixels = (255 - digits.images[i] * (255 / 16)).astype(np.uint8)
            img = Image.fromarray(pixels).resize((64, 64), Image.Resampling.BICUBIC)
            shifted = Image.new("L", (64, 64), 255)
            shifted.paste(img, (1, 1))
            path = out / f"new_{label}_{i}.png"
            shifted.resize((72, 72), Image.Resampling.BICUBIC).save(path)
            paths.append(path)
            labels.append(str(label))
    return paths, labels


@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(model folder, its private cache folder, the digits folder) of a ``headless`` model on part of the digits."""
    from transferlab.examples import write_digits
    from transferlab.workflows.train import train

    root = tmp_path_factory.mktemp("predict_api")
    data = write_digits(root / "digits", per_class=PER_CLASS)
    cache = root / "cache"
    with runtime.settings(cache_directory=cache):
        result = train(data, out=root / "model", strategy="headless", val_fraction=0.2)
    assert result.metrics["accuracy"] > 0.5
    return root / "model", cache, data


def test_every_image_input_kind_gives_the_same_prediction(image_model: tuple[Path, Path, Path]) -> None:
    model_dir, cache, data = image_model
    paths = sorted(data.glob("*/*.png"))[::9][:8]
    model = transferlab.load_model(model_dir)
    with runtime.settings(cache_directory=cache):
        by_path = model.predict([str(p) for p in paths], top_k=3)
        by_kind = {
            "Path": model.predict(paths, top_k=3),
            "bytes": model.predict([p.read_bytes() for p in paths], top_k=3),
            "PIL": model.predict([Image.open(p) for p in paths], top_k=3),
            "array": model.predict([np.asarray(Image.open(p).convert("RGB")) for p in paths], top_k=3),
        }
        mixed = model.predict([paths[0], paths[1].read_bytes(), Image.open(paths[2]),
                               np.asarray(Image.open(paths[3]).convert("RGB"))])
    assert all("error" not in p for p in by_path)
    assert [p["input"] for p in by_path] == [str(p) for p in paths]
    assert by_kind["Path"][0]["input"] == str(paths[0])  # JSON-serialisable, not a Path
    assert by_kind["bytes"][0]["input"] == f"<bytes {paths[0].stat().st_size}>"
    assert by_kind["PIL"][0]["input"].startswith("<PIL.Image L 64x64")
    assert by_kind["array"][0]["input"] == "<array 64x64x3 uint8>"
    json.dumps(by_kind)
    for kind, preds in by_kind.items():
        assert [p["label"] for p in preds] == [p["label"] for p in by_path], kind
        for a, b in zip(preds, by_path, strict=True):
            assert list(a["probabilities"]) == list(b["probabilities"]), kind
            np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()),
                                       atol=1e-5, err_msg=kind)
    assert [p["label"] for p in mixed] == [p["label"] for p in by_path[:4]]


def test_prediction_never_writes_the_feature_cache(image_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model_dir, cache, data = image_model
    used = {int(p.stem.split("_")[1]) for p in data.glob("*/*.png")}
    paths, labels = _unseen_digits(tmp_path / "new", used)
    assert len(paths) == 100
    db = cache / "features.sqlite"
    before = _file_state(db)
    with FeatureCache(cache, read_only=True) as ro:
        vectors_before = ro.stats()["vectors"]
    with runtime.settings(cache_directory=cache):
        preds = transferlab.predict(model_dir, [str(p) for p in paths])
        again = transferlab.predict(model_dir, [p.read_bytes() for p in paths[:10]])
    assert _file_state(db) == before, "predicting wrote the feature cache"
    with FeatureCache(cache, read_only=True) as ro:
        assert ro.stats()["vectors"] == vectors_before
    assert all("error" not in p for p in preds)
    accuracy = np.mean([p["label"] == y for p, y in zip(preds, labels, strict=True)])
    assert accuracy >= 0.6, accuracy  # chance is 0.1
    assert [p["label"] for p in again] == [p["label"] for p in preds[:10]]
    # training still writes: the same images through the writable cache grow it
    from transferlab.features.images import FeatureExtractor

    with runtime.settings(cache_directory=cache):
        FeatureExtractor("efficientnet_lite0", cache=runtime.get_cache(), progress=False).extract(
            [str(p) for p in paths[:3]])
    with FeatureCache(cache, read_only=True) as ro:
        assert ro.stats()["vectors"] > vectors_before


def test_unusable_inputs_are_per_input_errors(image_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model_dir, cache, data = image_model
    good = sorted(data.glob("*/*.png"))[0]
    truncated = good.read_bytes()[:100]
    inputs = [b"certainly not an image", good, truncated, np.zeros((8, 8, 3), np.float32), 42,
              tmp_path / "missing.png", b"", np.asarray(Image.open(good).convert("RGB"))]
    with runtime.settings(cache_directory=cache):
        preds = transferlab.load_model(model_dir).predict(inputs)
    errors = [p.get("error") for p in preds]
    assert errors[0] == "not an image (format not recognised)"
    assert errors[1] is None and errors[7] is None and preds[1]["label"] == preds[7]["label"] == good.parent.name
    assert "truncated" in errors[2] or "corrupt" in errors[2]
    assert "uint8" in errors[3]
    assert "not an image input" in errors[4]
    assert errors[5] == "file not found"
    assert errors[6] == "empty file (0 bytes)"
    assert preds[0]["input"] == "<bytes 22>" and preds[4]["input"] == 42
    json.dumps(preds, default=str)


def test_network_prediction_is_unchanged_and_takes_any_input(image_model: tuple[Path, Path, Path]) -> None:
    """``predict_images`` (nn.image, what a saved fine-tuned network uses) gives exactly the probabilities of the
    training code's evaluation batches, for paths, and the same for bytes, PIL images and arrays."""
    import torch

    from transferlab.backbones import get_backbone
    from transferlab.nn.image import build_net, predict_images
    from transferlab.strategies._network import ImageBatches, predict_paths

    _, _, data = image_model
    paths = [str(p) for p in sorted(data.glob("*/*.png"))[:40]]
    torch.manual_seed(0)
    net = build_net("efficientnet_lite0", 10, 0.2, pretrained=False).eval()
    prep = get_backbone("efficientnet_lite0").preprocessing.with_size(64)
    batches = ImageBatches(paths, np.zeros(len(paths), np.int64), prep, 32, augment=False, cache=False)
    with torch.inference_mode():
        reference = np.concatenate([torch.softmax(net(x).float(), 1).numpy()
                                    for x, _ in batches.eval_batches(np.arange(len(paths)))])
    proba, ok, failures = predict_paths(net, prep, paths)
    assert ok == list(range(len(paths))) and not failures
    assert np.array_equal(proba, reference)
    mixed = [Path(paths[0]).read_bytes(), Image.open(paths[1]), np.asarray(Image.open(paths[2]).convert("RGB")),
             b"junk", paths[3]]
    proba2, ok2, failures2 = predict_images(net, prep, mixed)
    assert ok2 == [0, 1, 2, 4] and failures2 == {3: "not an image (format not recognised)"}
    np.testing.assert_allclose(proba2, reference[[0, 1, 2, 3]], atol=1e-5)


def test_text_model_predicts_strings_without_writing_the_cache(tmp_path: Path) -> None:
    from transferlab.workflows.train import train

    pos = ["a wonderful , moving film", "great acting and a lovely story", "funny , warm and brilliant",
           "i loved every minute", "a delightful and charming movie", "superb , touching and smart"]
    neg = ["a dull , boring mess", "terrible acting and a stupid plot", "i hated every minute",
           "tedious and badly written", "an awful , lifeless film", "painfully slow and pointless"]
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",positive\n' for t in pos) +
                    "".join(f'"{t}",negative\n' for t in neg))
    cache = tmp_path / "cache"
    with runtime.settings(cache_directory=cache):
        train(data, out=tmp_path / "m", strategy="text_headless", task="text", val_fraction=0.25)
        db = cache / "features.sqlite"
        before = _file_state(db)
        model = transferlab.load_model(tmp_path / "m")
        new = ["an absolutely wonderful film , i loved it", "a boring , awful waste of time", "  ",
               "what a superb and charming story"]
        preds = model.predict(new)
        one = model.predict("a dreadful , tedious film")
    assert model.config["weights"]["kind"] == "text_embedding+head"
    assert _file_state(db) == before, "predicting texts wrote the embedding cache"
    assert [p.get("label") for p in preds] == ["positive", "negative", None, "positive"]
    assert preds[2]["error"] == "empty text" and preds[0]["input"] == new[0]
    assert len(one) == 1 and one[0]["label"] == "negative"


def test_read_only_cache_reads_hits_and_writes_nothing(tmp_path: Path) -> None:
    missing = FeatureCache(tmp_path / "none", read_only=True)
    assert missing.get_many("k", ["a"]) == {} and missing.get_failures(["a"]) == {}
    missing.put_many("k", [("a", np.ones(3, np.float32))])
    assert not (tmp_path / "none").exists()
    with FeatureCache(tmp_path / "c") as rw:
        rw.put_many("k", [("a", np.arange(3, dtype=np.float32))])
        rw.put_failures([("b", "broken")])
    state = _file_state(tmp_path / "c" / "features.sqlite")
    ro = FeatureCache(tmp_path / "c", read_only=True)
    assert ro.get_many("k", ["a", "z"])["a"].tolist() == [0.0, 1.0, 2.0]
    assert ro.get_failures(["b"]) == {"b": "broken"}
    ro.put_many("k", [("z", np.ones(3, np.float32))])
    ro.put_failures([("y", "bad")])
    assert "z" not in ro.get_many("k", ["z"])
    ro.close()
    assert _file_state(tmp_path / "c" / "features.sqlite") == state
    # missing at first, created later by a writer: the read-only cache sees it then
    late = FeatureCache(tmp_path / "late", read_only=True)
    assert late.get_many("k", ["a"]) == {}
    with FeatureCache(tmp_path / "late") as rw:
        rw.put_many("k", [("a", np.ones(2, np.float32))])
    assert "a" in late.get_many("k", ["a"])
    with runtime.settings(cache_directory=tmp_path / "c"):
        assert not runtime.get_cache().read_only
        with runtime.read_only_cache():
            assert runtime.get_cache().read_only and runtime.cache_is_read_only()
        assert not runtime.get_cache().read_only


def test_package_exports_verbs_lazily() -> None:
    code = ("import sys, transferlab; heavy = [m for m in ('torch', 'sklearn', 'transformers', "
            "'transferlab.workflows', 'transferlab.strategies') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"
    assert set(transferlab.__all__) >= {"train", "evaluate", "compare", "rank", "pretrain_text", "load_model",
                                        "predict", "list_backbones", "make_strategy", "strategy_names"}
    from transferlab.workflows.compare import compare
    from transferlab.workflows.train import evaluate, train

    assert transferlab.train is train and transferlab.evaluate is evaluate and transferlab.compare is compare
    assert "headless" in transferlab.strategy_names()
    assert any(b.name == "efficientnet_lite0" for b in transferlab.list_backbones())
    with pytest.raises(AttributeError):
        transferlab.no_such_verb  # noqa: B018


def test_loaders_need_no_training_code() -> None:
    """Loading every saved kind imports neither strategies nor workflows (checked in a fresh interpreter)."""
    code = ("import importlib, sys; from transferlab.model.loaders import LOADERS, loader_for\n"
            "[loader_for(k) for k in LOADERS]\n"
            "print([m for m in sys.modules if m.startswith(('transferlab.strategies', 'transferlab.workflows'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_bytes_input_shares_the_cache_with_its_file(tmp_path: Path) -> None:
    """The digest of file bytes is the file's: a path and its bytes are one cache entry; pixels never collide."""
    from transferlab.features.images import content_digest

    img = Image.new("RGB", (5, 4), (10, 20, 30))
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(buffer.getvalue())
    by_path, by_bytes = content_digest(str(path)), content_digest(buffer.getvalue())
    assert by_path[0] == by_bytes[0]
    by_image, by_array = content_digest(img), content_digest(np.asarray(img))
    assert by_image[0] == by_array[0] != by_path[0]
    assert content_digest(tmp_path) == (None, "is a folder, not a file")
