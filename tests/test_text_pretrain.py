"""transferlab pretrain-text: word2vec vectors on a corpus (closer for words that co-occur; a backbone for the word
networks) and masked-language-model training of MiniLM continued on a corpus (lower MLM loss; a backbone for
text_finetune and text_headless). Tiny corpora, few steps."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from transferlab.cli import main
from transferlab.data.texts import TextDataset
from transferlab.errors import UserError
from transferlab.model import Model

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FRUIT = "apple banana cherry grape mango peach pear plum".split()
CARS = "car truck engine wheel brake tyre garage diesel".split()
FILLER = "the a and of with in on this that very".split()


def _documents(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, topic): each document mixes words of one topic with filler words."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        group, topic = (FRUIT, "fruit") if i % 2 else (CARS, "cars")
        words = [rng.choice(group) for _ in range(6)] + [rng.choice(FILLER) for _ in range(3)]
        rng.shuffle(words)
        docs.append((" ".join(words), topic))
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(t for t, _ in _documents(600)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vectors(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.workflows.pretrain_text import pretrain_text

    out = tmp_path_factory.mktemp("w2v") / "vectors"
    pretrain_text(corpus, out, method="skipgram", dim=24, epochs=20, min_count=1, seed=0, progress=False)
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- word vectors --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["skipgram", "cbow"])
def test_word_vectors_place_co_occurring_words_closer(method: str, corpus: Path, vectors: Path, tmp_path: Path):
    from transferlab.workflows.pretrain_text import load_word_vectors, pretrain_text, read_manifest

    folder = vectors
    if method == "cbow":
        folder = tmp_path / "cbow"
        pretrain_text(corpus, folder, method="cbow", dim=24, epochs=20, min_count=1, seed=0, progress=False)
    else:  # the same seed, the same vectors
        pretrain_text(corpus, tmp_path / "again", method="skipgram", dim=24, epochs=20, min_count=1, seed=0,
                      progress=False)
        name = "vectors.safetensors"
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes()
    manifest = read_manifest(folder)
    assert manifest["kind"] == "word_vectors" and manifest["method"] == method and manifest["dim"] == 24
    assert {p.name for p in folder.iterdir()} == {"transferlab_backbone.json", "vectors.safetensors",
                                                  "vocabulary.json"}
    matrix, index = load_word_vectors(folder)
    assert matrix.shape == (len(index), 24) and set(FRUIT + CARS) <= set(index)
    same = [_cosine(matrix[index[a]], matrix[index[b]]) for g in (FRUIT, CARS) for a in g for b in g if a < b]
    across = [_cosine(matrix[index[a]], matrix[index[b]]) for a in FRUIT for b in CARS]
    assert np.mean(same) > np.mean(across) + 0.3, (np.mean(same), np.mean(across))
    # every fruit's nearest topic word is a fruit
    for word in FRUIT:
        others = [w for w in FRUIT + CARS if w != word]
        nearest = max(others, key=lambda w: _cosine(matrix[index[word]], matrix[index[w]]))
        assert nearest in FRUIT, (word, nearest)


def test_word_vectors_are_a_backbone_for_embedding_cnn(vectors: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    from transferlab.nn.wordnets import Vocabulary, embedding_matrix
    from transferlab.strategies import make_strategy
    from transferlab.workflows.pretrain_text import load_word_vectors

    docs = _documents(80, seed=1)
    train = TextDataset.from_texts([t for t, _ in docs], [c for _, c in docs])
    s = make_strategy("text_embedding_cnn", modality="text", embeddings=str(vectors), frozen_epochs=8,
                      unfrozen_epochs=1, filters=8, batch_size=16, lr=3e-3, val_fraction=0)
    assert s.fit(train) is s
    assert s.net_.embedding.embedding_dim == 24 and s.glove_coverage_ == 1.0  # every word has a trained vector
    matrix, index = load_word_vectors(vectors)
    start, found = embedding_matrix(Vocabulary(s.vocabulary_.tokens), str(vectors))
    assert found == len(s.vocabulary_) - 2
    assert np.array_equal(start[s.vocabulary_.index["apple"]], matrix[index["apple"]])
    probe = TextDataset.from_texts(["apple pear and plum", "the diesel truck engine", "zzqx unknown"])
    proba = s.predict_proba(probe)
    assert list(np.asarray(s.classes_)[proba[:2].argmax(1)]) == ["fruit", "cars"]
    model, write = Model.from_strategy(s, "text", {"text_column": "text", "label_column": "label"})
    model.save(tmp_path / "cnn", write)
    again, _, _ = Model.load(tmp_path / "cnn").predict_proba(probe.texts)
    assert np.allclose(again, proba, atol=1e-6)

    # the CLI: --backbone DIR picks the word vectors for the word networks
    data = tmp_path / "topics.csv"
    data.write_text("text,label\n" + "\n".join(f"{t},{c}" for t, c in docs) + "\n")
    out = tmp_path / "cli_cnn"
    assert main(["--quiet", "train", str(data), "--task", "text", "--strategy", "embedding_cnn", "--backbone",
                 str(vectors), "--param", "frozen_epochs=8", "--param", "unfrozen_epochs=0", "--param", "filters=8",
                 "--param", "batch_size=16", "--param", "lr=0.003",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.9
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"]["params"]["embeddings"] == str(vectors)
    assert config["weights"]["net"]["embed_dim"] == 24


def test_pretrain_text_bad_inputs_exit_2(vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    def one_line_error(argv: list[str], expected: str) -> None:
        assert main(["--quiet", *argv]) == 2
        err = capsys.readouterr().err
        assert expected in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    one_line_error(["pretrain-text", str(empty), "--out", str(tmp_path / "o")], "the corpus has no text")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\xff\xfe\x00" * 50 + b"\x81\x00")
    one_line_error(["pretrain-text", str(binary), "--out", str(tmp_path / "o")], "NUL bytes")
    table = tmp_path / "c.csv"
    table.write_text("body\nhello\n")
    one_line_error(["pretrain-text", str(table), "--out", str(tmp_path / "o")], "no column 'text'")
    one_line_error(["pretrain-text", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")], "no such corpus")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "precious.txt").write_text("x")
    one_line_error(["pretrain-text", str(empty), "--out", str(taken)], "not a backbone folder")
    one_line_error(["pretrain-text", str(empty), "--out", str(tmp_path / "o"), "--mlm", "--method", "cbow"],
                   "contradict")
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "\n".join(f"{t},{c}" for t, c in _documents(20)) + "\n")
    one_line_error(["train", str(data), "--task", "text", "--strategy", "finetune", "--backbone", str(vectors)],
                   "use it with text_embedding_cnn or text_embedding_rnn")
    one_line_error(["train", str(data), "--task", "text", "--strategy", "embedding_cnn", "--backbone", str(taken)],
                   "not a backbone folder")
    one_line_error(["train", str(data), "--task", "text", "--strategy", "embedding_cnn", "--backbone",
                    str(tmp_path / "missing_dir")], "no such folder")
    with pytest.raises(UserError, match="word-vector folder"):
        from transferlab.strategies import make_strategy

        make_strategy("text_embedding_cnn", modality="text", embeddings="word2vec").fit(
            TextDataset.from_texts(["a", "b"], ["x", "y"]))


# --- masked language model -----------------------------------------------------------------------------------------
def test_mlm_lowers_the_loss_and_is_a_backbone_for_finetune_and_headless(tmp_path: Path, cache_dir: Path):
    from transferlab.features.text import SentenceEncoder
    from transferlab.strategies import make_strategy
    from transferlab.workflows.pretrain_text import mlm_loss, pretrain_text, read_manifest

    docs = [t for t, _ in _documents(32, seed=2)]
    corpus = tmp_path / "corpus.jsonl"  # a JSONL corpus with a text column, for variety
    corpus.write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(docs)) + "\n")
    out = tmp_path / "minilm_adapted"
    manifest = pretrain_text(corpus, out, method="mlm", max_steps=8, batch_size=8, max_length=24, seed=0,
                             progress=False)
    assert manifest["kind"] == "transformer" and manifest["documents"] == 32
    assert manifest["mlm_loss_after"] < manifest["mlm_loss_before"] - 1.0, manifest
    assert read_manifest(out)["mlm_loss_after"] == manifest["mlm_loss_after"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "mlm_head.safetensors",
            "transferlab_backbone.json"} <= {p.name for p in out.iterdir()}
    # measured again from the saved folder (body + MLM head) with the same masks: the same loss
    assert mlm_loss(out, docs, max_length=24, seed=0) == pytest.approx(manifest["mlm_loss_after"], abs=1e-3)
    assert mlm_loss(None, docs, max_length=24, seed=0) == pytest.approx(manifest["mlm_loss_before"], abs=1e-3)

    labelled = _documents(24, seed=3)
    train = TextDataset.from_texts([t for t, _ in labelled], [c for _, c in labelled])
    probe = ["apple and pear", "a truck engine"]
    ft = make_strategy("text_finetune", modality="text", backbone=str(out), epochs=1, max_length=16,
                       batch_size=16, val_fraction=0)
    assert ft.fit(train) is ft
    proba = ft.predict_proba(TextDataset.from_texts(probe))
    model, write = Model.from_strategy(ft, "text", {"text_column": "text", "label_column": "label"})
    model.save(tmp_path / "ft", write)
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["weights"]["base"] == str(out)
    assert np.allclose(Model.load(tmp_path / "ft").predict_proba(probe)[0], proba, atol=1e-5)

    # headless on the adapted body: its own embeddings (not MiniLM's), and the saved model carries the body
    adapted = SentenceEncoder(16, model_path=str(out)).embed(probe)
    assert not np.allclose(adapted, SentenceEncoder(16).embed(probe), atol=1e-3)
    hl = make_strategy("text_headless", modality="text", backbone=str(out), max_length=16, C=1.0).fit(train)
    model, write = Model.from_strategy(hl, "text", {"text_column": "text", "label_column": "label"})
    model.save(tmp_path / "hl", write)
    assert (tmp_path / "hl" / "transformer" / "model.safetensors").is_file()
    assert np.allclose(Model.load(tmp_path / "hl").predict_proba(probe)[0],
                       hl.predict_proba(TextDataset.from_texts(probe)), atol=1e-6)
