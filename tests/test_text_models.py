"""Trained text models: word CNN/RNN on GloVe, MiniLM fine-tuning, SetFit-style few-shot. Tiny data, one epoch."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from transferlab.data.texts import TextDataset
from transferlab.model import Model
from transferlab.strategies import make_strategy

os.environ.setdefault("HF_HUB_OFFLINE", "1")

POS = ["a wonderful , moving film", "great acting and a lovely story", "funny , warm and brilliant",
       "i loved every minute", "a delightful and charming movie", "superb , touching and smart"]
NEG = ["a dull , boring mess", "terrible acting and a stupid plot", "i hated every minute",
       "tedious and badly written", "an awful , lifeless film", "painfully slow and pointless"]


def _dataset(n: int = 60, seed: int = 0) -> TextDataset:
    """n rows of sst2 when the shared datasets exist, else a tiny synthetic sentiment set."""
    path = SHARED / "sst2" / "train.csv"
    if path.exists():
        with open(path, encoding="utf-8", newline="") as f:
            rows = [(r["text"], r["label"]) for r in csv.DictReader(f)]
        random.Random(seed).shuffle(rows)
        rows = rows[:n]
    else:
        rng = random.Random(seed)
        rows = [(rng.choice(POS if i % 2 else NEG), "positive" if i % 2 else "negative") for i in range(n)]
    return TextDataset.from_texts([t for t, _ in rows], [label for _, label in rows])


def _round_trip(strategy, train: TextDataset, tmp_path: Path, files: set[str]) -> None:
    """fit -> save -> load without the strategy: the same probabilities."""
    assert not hasattr(strategy, "classes_")
    assert strategy.clone().get_params() == strategy.get_params()
    assert strategy.fit(train) is strategy
    probe = TextDataset.from_texts(train.texts[:10] + ["an utterly new sentence with zzqx words"])
    proba = strategy.predict_proba(probe)
    assert proba.shape == (11, len(train.classes)) and np.allclose(proba.sum(1), 1, atol=1e-5)
    model, write = Model.from_strategy(strategy, "text", {"text_column": "text", "label_column": "label"})
    model.save(tmp_path / strategy.name, write)
    saved = {p.name for p in (tmp_path / strategy.name).rglob("*")}
    assert files <= saved, files - saved
    assert not any(f.endswith((".pkl", ".pickle", ".joblib", ".pt", ".bin")) for f in saved)
    loaded = Model.load(tmp_path / strategy.name)
    again, ok, failures = loaded.predict_proba(probe.texts + [""])
    assert ok == list(range(11)) and failures == {11: "empty text"}
    assert np.allclose(again, proba, atol=1e-5)


# --- word vectors --------------------------------------------------------------------------------------------------
def test_glove_matrix_rows_are_glove_vectors():
    from transferlab.nn.wordnets import Vocabulary, embedding_matrix, glove_std, load_glove

    vocab = Vocabulary.build(["the film was good , the acting bad", "zzqxword film"])
    matrix, found = embedding_matrix(vocab, "glove", seed=0)
    vectors, index = load_glove()
    assert matrix.shape == (len(vocab), 50)
    assert np.all(matrix[0] == 0)  # padding
    for word in ("the", "film", "good", ",", "acting", "bad"):
        assert np.array_equal(matrix[vocab.index[word]], vectors[index[word]])
    assert found == len(vocab) - 3  # everything but <pad>, <unk> and the made-up word
    oov = matrix[vocab.index["zzqxword"]]
    assert not np.array_equal(oov, 0) and "zzqxword" not in index
    random_matrix, none = embedding_matrix(vocab, "random", seed=0)
    assert none == 0 and np.all(random_matrix[0] == 0)
    assert abs(float(random_matrix[1:].std()) - glove_std()) < 0.3


@pytest.mark.parametrize("name,params", [
    ("text_embedding_cnn", {"frozen_epochs": 1, "unfrozen_epochs": 1, "filters": 8}),
    ("text_embedding_cnn", {"embeddings": "random", "frozen_epochs": 1, "unfrozen_epochs": 0, "filters": 8}),
    ("text_embedding_rnn", {"frozen_epochs": 1, "unfrozen_epochs": 1, "hidden": 8}),
    ("text_embedding_rnn", {"cell": "lstm", "frozen_epochs": 1, "unfrozen_epochs": 0, "hidden": 8}),
])
def test_word_networks_contract_and_round_trip(name: str, params: dict, tmp_path: Path):
    strategy = make_strategy(name, modality="text", **params)
    _round_trip(strategy, _dataset(), tmp_path, {"model.safetensors", "vocabulary.json", "config.json"})
    stages = [h["stage"] for h in strategy.history_]
    if params.get("embeddings") != "random" and params.get("unfrozen_epochs"):
        assert stages == ["embeddings frozen", "embeddings unfrozen"]


def test_word_network_freezes_then_unfreezes_embeddings():
    from transferlab.nn.wordnets import embedding_matrix

    s = make_strategy("text_embedding_cnn", modality="text", frozen_epochs=1, unfrozen_epochs=0, filters=4,
                      val_fraction=0).fit(_dataset(40))
    start, _ = embedding_matrix(s.vocabulary_, "glove", seed=0)
    assert np.array_equal(s.net_.embedding.weight.detach().numpy(), start)  # frozen: untouched
    s2 = make_strategy("text_embedding_cnn", modality="text", frozen_epochs=1, unfrozen_epochs=1, filters=4,
                       val_fraction=0, embedding_lr=1e-2).fit(_dataset(40))
    assert not np.array_equal(s2.net_.embedding.weight.detach().numpy(), start)
    assert np.all(s2.net_.embedding.weight.detach().numpy()[0] == 0)  # padding row stays zero


def test_word_network_bad_params():
    from transferlab.errors import UserError

    with pytest.raises(UserError, match="glove"):
        make_strategy("text_embedding_cnn", modality="text", embeddings="word2vec").fit(_dataset(20))
    with pytest.raises(UserError, match="cell"):
        make_strategy("text_embedding_rnn", modality="text", cell="rnn").fit(_dataset(20))


# --- MiniLM fine-tuning --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"gradual": True}, {"bf16": True}])
def test_finetune_contract_and_round_trip(params: dict, tmp_path: Path):
    strategy = make_strategy("text_finetune", modality="text", epochs=1, max_length=16, batch_size=16,
                             val_fraction=0.2, head_init="random", **params)
    _round_trip(strategy, _dataset(48), tmp_path,
                {"model.safetensors", "tokenizer.json", "vocab.txt", "config.json", "history.json"})
    config = json.loads((tmp_path / strategy.name / "config.json").read_text())
    assert config["weights"]["bf16"] is bool(params.get("bf16"))  # the loader answers in bf16 where trained in it
    if params.get("gradual"):
        assert [h["trainable_groups"] for h in strategy.history_] == [1, 2, 3, 4]
    else:
        assert [h["trainable_groups"] for h in strategy.history_] == [4]
    # the word embeddings stay as pretrained; the transformer layers moved
    from transferlab.nn.transformer import load_pretrained_body

    body, _ = load_pretrained_body()
    import torch

    assert torch.equal(body.embeddings.word_embeddings.weight, strategy.net_.body.embeddings.word_embeddings.weight)
    assert not torch.equal(body.encoder.layer[5].output.dense.weight,
                           strategy.net_.body.encoder.layer[5].output.dense.weight)


def test_layer_groups_hold_every_body_parameter_and_end_to_end_trains_them_all():
    """Every parameter the body's forward uses sits in a layer group (MPNet's relative position bias, shared by all
    layers, with the embeddings), so "end to end" trains all of them but the frozen word embeddings, and the top
    groups alone leave the embeddings' group frozen. MiniLM, and a tiny random MPNet (same classes as mpnet)."""
    from transferlab.backbones.minilm import _transformers
    from transferlab.nn.transformer import TransformerClassifier, load_pretrained_body

    hf = _transformers()  # set up as the package loads it (torchvision stand-in)
    tiny = hf.MPNetModel(hf.MPNetConfig(vocab_size=64, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=40))
    for body in (load_pretrained_body()[0], tiny):
        net = TransformerClassifier(body, 2, 0.0)
        grouped = {id(p) for group in net.layer_groups() for m in group for p in m.parameters()}
        missing = [n for n, p in body.named_parameters() if id(p) not in grouped and not n.startswith("pooler.")]
        assert missing == [], missing
        strategy = make_strategy("text_finetune", modality="text")
        n_groups = len(net.layer_groups())
        trained = {id(p) for g in strategy._param_groups(net, n_groups) for p in g["params"]}
        named = dict(body.named_parameters())
        frozen = [n for n, p in named.items() if id(p) not in trained and not n.startswith("pooler.")]
        assert frozen == ["embeddings.word_embeddings.weight"], frozen
        assert all(named[n].requires_grad == (id(p) in trained) for n, p in named.items())
        top = {id(p) for g in strategy._param_groups(net, n_groups - 1) for p in g["params"]}
        assert not top & {id(p) for m in net.layer_groups()[0] for p in m.parameters()}
    assert "encoder.relative_attention_bias.weight" in dict(tiny.named_parameters())


def test_finetune_top_layers_reads_the_kept_outputs_of_the_frozen_bottom(tmp_path: Path):
    """train_layers=2: the bottom 4 of MiniLM's 6 layers run once (their outputs kept as float16) and the top 2 train
    on them; the top of the network over those kept outputs embeds as the whole network does, the bottom layers and
    word embeddings stay as pretrained, the top ones move, and the saved model (the whole network) predicts as the
    fitted one."""
    import torch

    from transferlab.nn.transformer import (
        TopOfClassifier,
        TransformerClassifier,
        collate,
        collate_hidden,
        load_pretrained_body,
        lower_hidden_states,
        tokenize,
    )

    train = _dataset(48)
    body, tokenizer = load_pretrained_body()
    net = TransformerClassifier(body, 2, 0.0).eval()
    encoded = tokenize(tokenizer, train.texts[:8], 32)
    with torch.inference_mode():
        whole = net.embed(collate(encoded)).numpy()
        top = TopOfClassifier(net, 2).eval().embed(collate_hidden(lower_hidden_states(body, encoded, 4))).numpy()
    np.testing.assert_allclose(top, whole, atol=2e-3)  # float16 kept states: ~1e-4 apart
    assert len(body.encoder.layer) == 6 and body.embeddings.__class__.__name__ != "_Given"  # body whole again

    strategy = make_strategy("text_finetune", modality="text", epochs=1, max_length=16, batch_size=16,
                             val_fraction=0.2, head_init="random", train_layers=2)
    _round_trip(strategy, train, tmp_path, {"model.safetensors", "config.json", "history.json"})
    assert [h["stage"] for h in strategy.history_] == ["top 2 of 6 layers"]
    tuned = strategy.net_.body.encoder.layer
    for i in range(4):
        assert torch.equal(tuned[i].output.dense.weight, body.encoder.layer[i].output.dense.weight), i
    for i in (4, 5):
        assert not torch.equal(tuned[i].output.dense.weight, body.encoder.layer[i].output.dense.weight), i
    from transferlab.errors import UserError

    with pytest.raises(UserError, match="gradual"):
        make_strategy("text_finetune", modality="text", train_layers=2, gradual=True).fit(train)
    with pytest.raises(UserError, match="train_layers"):
        make_strategy("text_finetune", modality="text", train_layers=0).fit(train)


def test_kept_outputs_spill_to_a_file_beyond_the_memory_share_and_a_stored_file_is_read_back(tmp_path: Path):
    """The frozen bottom's outputs: in RAM when they fit in MEMORY_SHARE of the available memory, else in a
    temporary float16 file (same values); with ``store`` (a checkpointed run) a complete file is read back by the next
    call without running the body again; a file left by another setting (other n_lower) is recomputed."""
    from transferlab.nn.transformer import load_pretrained_body, lower_hidden_states, tokenize

    body, tokenizer = load_pretrained_body()
    encoded = tokenize(tokenizer, _dataset(12).texts, 24)
    calls = []
    body.embeddings.register_forward_hook(lambda *_: calls.append(1))
    in_ram = lower_hidden_states(body, encoded, 3)
    assert not isinstance(in_ram[0].base, np.memmap) and len(calls) > 0
    spilled = lower_hidden_states(body, encoded, 3, memory=1024)  # 1 KiB "available": the file it is
    assert isinstance(spilled[0].base, np.memmap)
    for a, b in zip(in_ram, spilled, strict=True):
        assert a.shape == (len(b), 384) and np.array_equal(a, b)
    assert [len(h) for h in in_ram] == [len(e) for e in encoded]

    store = tmp_path / "ckpt" / "lower_states.f16"
    lower_hidden_states(body, encoded, 3, store=store)
    assert store.exists() and (tmp_path / "ckpt" / "lower_states.f16.json").exists()
    calls.clear()
    again = lower_hidden_states(body, encoded, 3, store=store)
    assert calls == [] and all(np.array_equal(a, b) for a, b in zip(in_ram, again, strict=True))
    other = lower_hidden_states(body, encoded, 2, store=store)  # another cut: not the stored one
    assert calls and not np.array_equal(other[0], in_ram[0]) and other[0].dtype == np.float16
    assert np.array_equal(again[0], in_ram[0]), "a file being rewritten never changes the arrays read before"


def test_finetune_killed_after_an_epoch_resumes_to_the_same_model(tmp_path: Path, monkeypatch):
    """text_finetune with a checkpoint_dir saves every epoch (and the frozen bottom's outputs); a run killed after
    its first epoch and resumed skips that epoch and the bottom's pass and ends with the same model as an
    uninterrupted run; resuming another run's checkpoint (other data) is refused."""
    from transferlab import training
    from transferlab.errors import UserError

    train = _dataset(60)
    params = dict(epochs=2, max_length=16, batch_size=16, val_fraction=0.2, head_init="random", train_layers=2)
    full = make_strategy("text_finetune", modality="text", **params).fit(train)

    ckpt = tmp_path / "ckpt"
    save = training.Checkpointer.save

    class Killed(Exception):
        pass

    def save_then_die(self, state):
        save(self, state)
        raise Killed

    monkeypatch.setattr(training.Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        make_strategy("text_finetune", modality="text", checkpoint_dir=str(ckpt), **params).fit(train)
    monkeypatch.setattr(training.Checkpointer, "save", save)
    assert (ckpt / "stage0" / "checkpoint.pt").exists() and (ckpt / "lower_states.f16.json").exists()

    with pytest.raises(UserError, match="different run"):
        make_strategy("text_finetune", modality="text", checkpoint_dir=str(ckpt), resume=True,
                      **params).fit(_dataset(60, seed=1))
    from transferlab.nn import transformer

    passes = []
    real = transformer.eval_batches
    monkeypatch.setattr(transformer, "eval_batches", lambda *a, **k: passes.append(1) or real(*a, **k))
    resumed = make_strategy("text_finetune", modality="text", checkpoint_dir=str(ckpt), resume=True,
                            **params).fit(train)
    assert passes == [], "the frozen bottom's outputs come from the checkpoint"
    assert [row["epoch"] for row in resumed.history_[0]["epochs"]] == [1, 2]
    probe = TextDataset.from_texts(train.texts[:12])
    np.testing.assert_allclose(resumed.predict_proba(probe), full.predict_proba(probe), atol=1e-6)


def test_train_interrupted_by_ctrl_c_says_how_to_resume_and_resume_finishes(tmp_path: Path):
    """`transferlab train --strategy text_finetune --out M`, Ctrl-C after the first saved epoch: exit 130, no
    traceback, a line naming the checkpoint folder and --resume; the same command with --resume goes on from there
    and saves the model (checkpoints removed)."""
    import signal
    import subprocess
    import sys
    import time

    data = _dataset(120)
    csv_path = tmp_path / "reviews.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(data.texts, [data.classes[i] for i in data.y], strict=True))
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "transferlab.cli", "train", str(csv_path), "--strategy", "text_finetune",
           "--param", "epochs=8", "--param", "patience=null", "--param", "max_length=32", "--param",
           "train_layers=2", "--param", "head_init=random", "--out", str(out)]
    # 7 epochs (no early stop) after the first checkpoint: Ctrl-C lands in training even when the machine is so
    # busy that this loop wakes seconds late
    env = dict(os.environ, TRANSFERLAB_QUIET="1", HF_HUB_OFFLINE="1")
    checkpoint = tmp_path / ".model.checkpoint" / "stage0" / "checkpoint.pt"
    # a test run started in the background (`cmd &`, as CI may) ignores SIGINT and the child would inherit that,
    # training every epoch and exiting 0: restore the default so Ctrl-C reaches it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint was written"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and str(checkpoint.parent.parent) in err and "Traceback" not in err
    assert not (out / "metrics.json").exists()

    env.pop("TRANSFERLAB_QUIET")
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from the checkpoint after epoch" in resumed.stderr
    assert "read back from" in resumed.stderr  # the frozen bottom's outputs: not computed twice
    history = json.loads((out / "history.json").read_text())["stages"]
    assert [row["epoch"] for row in history[-1]["epochs"]][:2] == [1, 2]  # epoch 1 from the checkpoint, 2 after
    assert not checkpoint.parent.parent.exists(), "checkpoints are removed once the model is saved"


def test_finetune_starts_from_the_probe_and_keeps_it_unless_significantly_beaten(tmp_path: Path):
    """LP-FT for text (head_init=probe, the default): the head starts as the logistic-regression probe on the
    pretrained body's mean-pooled embeddings (a learning rate of ~0 leaves the model there), and a fine-tuning that
    wrecks the body (lr 1e3) loses to the probe on the held-out texts, so the pretrained body comes back with its
    probe refitted on every training text; a random head has no fallback."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from transferlab.nn.transformer import TransformerClassifier, collate, load_pretrained_body, tokenize

    train = _dataset(48)
    body, tokenizer = load_pretrained_body()
    embed = TransformerClassifier(body, 2, 0.0).eval()
    with torch.inference_mode():
        feats = np.concatenate([embed.embed(collate(tokenize(tokenizer, train.texts[i : i + 1], 16))).numpy()
                                for i in range(len(train))])

    def probe_proba(rows: np.ndarray) -> np.ndarray:
        y = np.asarray([train.classes.index(v) for v in train.labels])
        return LogisticRegression(C=1.0, max_iter=5000, random_state=0).fit(feats[rows], y[rows]).predict_proba(feats)

    still = make_strategy("text_finetune", modality="text", epochs=1, max_length=16, batch_size=16, lr=1e-12,
                          dropout=0.0, val_fraction=0.0).fit(train)
    assert still.head_init == "probe" and still.probe_check_ is None  # nothing held out: no check
    np.testing.assert_allclose(still.predict_proba(train), probe_proba(np.arange(len(train))), atol=2e-3)

    wrecked = make_strategy("text_finetune", modality="text", epochs=1, max_length=16, batch_size=16, lr=1e3,
                            val_fraction=0.3, patience=None).fit(train)
    check = wrecked.probe_check_
    assert check["kept"] == "probe" and check["probe_accuracy"] > check["fine_tuned_accuracy"]
    layer = wrecked.net_.body.encoder.layer[5].output.dense.weight
    assert torch.equal(layer, body.encoder.layer[5].output.dense.weight)
    np.testing.assert_allclose(wrecked.predict_proba(train), probe_proba(np.arange(len(train))), atol=2e-3)
    wrecked.save_weights(tmp_path)
    assert json.loads((tmp_path / "history.json").read_text())["probe_check"]["kept"] == "probe"
    assert "skipped" not in check  # the probe missed enough of the held-out texts to be beatable

    # 2 held-out texts: no fine-tuned model could be significantly better than the probe, so none is trained
    few = make_strategy("text_finetune", modality="text", epochs=1, max_length=16, batch_size=16,
                        val_fraction=0.05).fit(train)
    assert few.probe_check_["held_out"] == 2 and few.history_ == [] and "skipped" in few.probe_check_["skipped"]
    np.testing.assert_allclose(few.predict_proba(train), probe_proba(np.arange(len(train))), atol=2e-3)

    random_head = make_strategy("text_finetune", modality="text", epochs=1, max_length=16, batch_size=16,
                                val_fraction=0.3, head_init="random").fit(train)
    assert random_head.probe_check_ is None and random_head._head_lr() == 1e-3
    assert wrecked._head_lr() == 1e3  # with the probe head: one rate for head and body


# --- SetFit-style few-shot -----------------------------------------------------------------------------------------
def test_pair_similarity_under_bf16_autocast_is_float32_and_close_to_float32():
    """Under bf16 autocast (text_fewshot and text_finetune on mpnet with AMX) only the transformer's matrix products
    run in bf16: its residual stream, and so the mean pooling and the cosine similarity of a pair, stay float32, so
    similarities near 1 are not rounded to bf16's steps of 0.004 (the contrastive loss regresses them to 1) and stay
    within 1e-2 of float32."""
    import torch

    from transferlab.nn.transformer import TransformerClassifier, collate, load_pretrained_body, tokenize
    from transferlab.strategies.text_fewshot import _pair_module

    body, tokenizer = load_pretrained_body()
    pair = _pair_module(TransformerClassifier(body, 1, 0.0)).eval()
    a = collate(tokenize(tokenizer, ["a gripping, beautifully acted film", "dull and far too long"], 16))
    b = collate(tokenize(tokenizer, ["a gripping and beautifully acted film", "dull, and far too long"], 16))
    with torch.inference_mode():
        exact = pair((a, b))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = pair((a, b))
            pooled = TransformerClassifier(body, 2, 0.0).embed(a)
    assert fast.dtype == torch.float32 and pooled.dtype == torch.float32
    assert (exact > 0.95).all() and torch.allclose(fast, exact, atol=1e-2)
    rounded = fast.to(torch.bfloat16).float()  # what a bf16 similarity would have been
    assert not torch.equal(fast, rounded)


def test_contrastive_pairs_balance_positive_and_negative():
    from transferlab.strategies.text_fewshot import contrastive_pairs

    y = np.array([0, 0, 1, 1, 2, 2])
    pairs = contrastive_pairs(y, 3, np.random.default_rng(0))
    assert len(pairs) == 2 * 3 * len(y)
    assert np.all((y[pairs[:, 0]] == y[pairs[:, 1]]) == (pairs[:, 2] == 1))
    assert pairs[:, 2].mean() == 0.5


def test_fewshot_contract_and_round_trip(tmp_path: Path):
    strategy = make_strategy("text_fewshot", modality="text", num_iterations=2, max_length=16)
    train = _dataset(16)
    _round_trip(strategy, train, tmp_path, {"body.safetensors", "head.json", "tokenizer.json", "vocab.txt"})
    # the class names are words, so templated sentences ("This sentence is positive.") join the 16 examples
    n_prompts = 6 * 2
    assert strategy.history_[0]["label_prompts"] == n_prompts
    assert strategy.history_[0]["n_pairs"] == 2 * 2 * (16 + n_prompts)


def test_fewshot_top_layers_train_on_the_kept_outputs_and_leave_the_bottom_as_pretrained(tmp_path: Path):
    """train_layers=2: the pairs tune only MiniLM's top 2 layers, over the kept outputs of the 4 below (which, with
    the word embeddings, stay as pretrained); the saved model predicts as the fitted one; a bad value is refused."""
    import torch

    from transferlab.errors import UserError
    from transferlab.nn.transformer import load_pretrained_body

    strategy = make_strategy("text_fewshot", modality="text", num_iterations=2, max_length=16, train_layers=2)
    _round_trip(strategy, _dataset(16), tmp_path, {"body.safetensors", "head.json"})
    pretrained, _ = load_pretrained_body()
    tuned = strategy.body_
    assert torch.equal(tuned.embeddings.word_embeddings.weight, pretrained.embeddings.word_embeddings.weight)
    for i in range(4):
        assert torch.equal(tuned.encoder.layer[i].output.dense.weight, pretrained.encoder.layer[i].output.dense.weight)
    for i in (4, 5):
        assert not torch.equal(tuned.encoder.layer[i].output.dense.weight,
                               pretrained.encoder.layer[i].output.dense.weight), i
    with pytest.raises(UserError, match="train_layers"):
        make_strategy("text_fewshot", modality="text", train_layers=0).fit(_dataset(16))


def test_fewshot_killed_within_its_epoch_resumes_after_the_saved_pairs_to_the_same_model(tmp_path: Path,
                                                                                         monkeypatch, capsys):
    """text_fewshot trains one epoch: with a checkpoint_dir its state is also saved within the epoch (here after
    every batch); a run killed after its third save and resumed trains only the batches after it and ends with the
    same model and the same epoch loss as an uninterrupted run. A fit shorter than CHECKPOINT_EVERY_S writes no
    checkpoint at all (mpnet's state is ~1 GB)."""
    from transferlab import training
    from transferlab.strategies import text_fewshot

    train = _dataset(16)
    params = dict(num_iterations=2, max_length=16, batch_size=8, train_layers=2)
    short = tmp_path / "short"
    make_strategy("text_fewshot", modality="text", checkpoint_dir=str(short), **params).fit(train)
    assert (short / "run.json").exists() and not (short / "checkpoint.pt").exists()
    monkeypatch.setattr(text_fewshot, "CHECKPOINT_EVERY_S", 0.0)
    full = make_strategy("text_fewshot", modality="text", **params).fit(train)
    n_batches = -(-full.history_[0]["n_pairs"] // 8)
    assert n_batches == 14

    ckpt = tmp_path / "ckpt"
    save, saves = training.Checkpointer.save, []

    class Killed(Exception):
        pass

    def save_then_die(self, state):
        save(self, state)
        saves.append(state.get("batches_done"))
        if len(saves) == 3:
            raise Killed

    monkeypatch.setattr(training.Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        make_strategy("text_fewshot", modality="text", checkpoint_dir=str(ckpt), **params).fit(train)
    monkeypatch.setattr(training.Checkpointer, "save", save)
    assert saves == [1, 2, 3] and (ckpt / "checkpoint.pt").exists()

    trained = []
    batch_loss = training.PairSimilarity.batch_loss
    monkeypatch.setattr(training.PairSimilarity, "batch_loss",
                        lambda self, *a, **k: trained.append(1) or batch_loss(self, *a, **k))
    monkeypatch.setenv("TRANSFERLAB_QUIET", "0")  # the log says where it resumed
    resumed = make_strategy("text_fewshot", modality="text", checkpoint_dir=str(ckpt), resume=True,
                            **params).fit(train)
    assert len(trained) == n_batches - 3, "the three saved batches are not trained again"
    assert f"resuming epoch 1 of 1 after batch 3 of {n_batches}" in capsys.readouterr().err
    probe = TextDataset.from_texts(train.texts[:12])
    np.testing.assert_allclose(resumed.predict_proba(probe), full.predict_proba(probe), atol=1e-6)
    np.testing.assert_allclose(resumed.history_[0]["epochs"][0]["train_loss"],
                               full.history_[0]["epochs"][0]["train_loss"], rtol=1e-6)


def test_fewshot_pairs_are_capped_for_mpnet_only():
    """The rounds of pairs fall on larger draws for mpnet (max_pairs auto: 2,000), never below one; MiniLM keeps
    all of them; a bad cap is a clear error."""
    from transferlab.errors import UserError
    from transferlab.strategies.text_fewshot import MPNET_MAX_PAIRS, TextFewShot

    assert MPNET_MAX_PAIRS == 2000
    assert TextFewShot(backbone="mpnet")._iterations(28) == 20  # 8 per class + 12 class-name sentences: 1,120 pairs
    assert TextFewShot(backbone="mpnet")._iterations(140) == 7  # 64 per class: 1,960 pairs, not 5,600
    assert TextFewShot(backbone="mpnet")._iterations(5000) == 1
    assert TextFewShot()._iterations(140) == 20
    assert TextFewShot(backbone="runs/pretrained_minilm")._iterations(140) == 20  # a pretrain-text folder is MiniLM
    assert TextFewShot(backbone="mpnet", max_pairs=None)._iterations(140) == 20
    assert TextFewShot(max_pairs=560)._iterations(140) == 2
    with pytest.raises(UserError, match="max_pairs"):
        TextFewShot(max_pairs=0)._iterations(10)


@pytest.mark.skipif(not __import__("transferlab.backbones.mpnet", fromlist=["available"]).available(),
                    reason="all-mpnet-base-v2 is not installed (scripts/setup.sh assembles it)")
def test_fewshot_on_mpnet_round_trip(tmp_path: Path):
    """text_fewshot tunes mpnet (bf16 where the CPU has the units) and its saved model names and loads that body."""
    strategy = make_strategy("text_fewshot", modality="text", num_iterations=1, max_length=16, backbone="mpnet")
    _round_trip(strategy, _dataset(12), tmp_path, {"body.safetensors", "head.json", "tokenizer.json"})
    config = json.loads((tmp_path / "text_fewshot" / "config.json").read_text())
    assert "mpnet" in json.dumps(config)
    assert strategy.body_.config.hidden_size == 768


def test_label_prompts_only_for_class_names_that_are_words():
    from transferlab.errors import UserError
    from transferlab.strategies.text_fewshot import TextFewShot, label_prompt_examples

    texts, labels = label_prompt_examples(["sci.space", "rec.autos"])
    assert "This sentence is sci space." in texts and "This sentence is rec autos." in texts
    assert labels.count(0) == labels.count(1) == len(texts) // 2
    assert TextFewShot()._use_label_prompts(["negative", "positive"])
    assert not TextFewShot()._use_label_prompts(["0", "1"])
    assert not TextFewShot(label_prompts=False)._use_label_prompts(["negative", "positive"])
    assert TextFewShot(label_prompts=True)._use_label_prompts(["0", "1"])
    with pytest.raises(UserError, match="label_prompts"):
        TextFewShot(label_prompts="maybe")._use_label_prompts(["a", "b"])
