"""Strategies that train the whole network: contract, learning rates, saving, errors, interrupt and resume.

Real EfficientNet-Lite0, tiny data (6 digits per class) and small inputs, so the file runs in about a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from transferlab.cli import main
from transferlab.data import ImageDataset
from transferlab.model import Model
from transferlab.strategies import make_strategy

NETWORK_STRATEGIES = ["finetune", "finetune_top", "gradual_unfreeze", "from_scratch"]
FAST = {"backbone": "efficientnet_lite0", "input_size": 64, "epochs": 1, "batch_size": 16}


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.examples import write_digits

    return write_digits(tmp_path_factory.mktemp("ft") / "digits", per_class=6)


@pytest.fixture(scope="module")
def fitted(tiny_digits: Path):  # noqa: ANN201
    ds = ImageDataset.from_folder(tiny_digits)
    # half held out, so that the probe misses enough images for fine-tuning to be worth running (it is skipped
    # when no network could beat the probe: test_fine_tuning_is_skipped_when_no_network_could_beat_the_probe)
    clf = make_strategy("gradual_unfreeze", n_stages=1, head_epochs=1, val_fraction=0.5, **FAST)
    assert clf.fit(ds) is clf
    return clf, ds


@pytest.mark.parametrize("name", NETWORK_STRATEGIES)
def test_contract_before_fit(name: str) -> None:
    clf = make_strategy(name, lr=2e-4, seed=3)
    clone = clf.clone()
    assert type(clone) is type(clf) and clone.get_params() == clf.get_params()
    assert not [a for a in vars(clf) if a.endswith("_")], "learned attributes exist only after fit"


def test_fit_returns_self_with_learned_attributes(fitted) -> None:  # noqa: ANN001
    clf, ds = fitted
    for attr in ("classes_", "net_", "history_", "preprocessing_"):
        assert hasattr(clf, attr)
    assert clf.classes_ == ds.classes
    assert [s["stage"] for s in clf.history_] == ["head", "top 1 groups"]
    proba = clf.predict_proba(ds)
    assert proba.shape == (len(ds), 10)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert not [a for a in vars(clf.clone()) if a.endswith("_")]


def test_discriminative_learning_rates() -> None:
    from transferlab.strategies._network import Stage, build_net

    net = build_net("efficientnet_lite0", 3, 0.2, pretrained=False)
    n = len(net.backbone_groups())
    clf = make_strategy("gradual_unfreeze", lr=1e-3, lr_ratio=2.5, head_lr=5e-3, n_stages=n, head_init="random")
    clf.schedule_ = clf.resolve_schedule(1000, 63)
    stages = clf.stages(n, 1000)
    assert [s.n_top_groups for s in stages] == list(range(n + 1))
    groups = clf._param_groups(net, Stage("top 4", 4, 1))
    lrs = [g["lr"] for g in groups]
    assert [g["name"] for g in groups][-1] == "head" and lrs[-1] == 5e-3
    assert lrs[-2] == 1e-3  # the top backbone group gets lr
    np.testing.assert_allclose(np.array(lrs[1:-1]) / np.array(lrs[:-2]), 2.5)  # each earlier group: / lr_ratio
    assert groups[0]["name"] == f"group{n - 4}"
    # default ratio 3, and finetune gives every backbone group the same rate
    default = make_strategy("gradual_unfreeze")
    default.schedule_ = default.resolve_schedule(200, 13)
    default = default._param_groups(net, Stage("all", n, 1))
    assert default[-3]["lr"] == pytest.approx(default[-2]["lr"] / 3)
    flat = make_strategy("finetune", lr=1e-4)
    flat.schedule_ = flat.resolve_schedule(200, 13)
    flat = flat._param_groups(net, Stage("all", n, 1))
    assert {g["lr"] for g in flat[:-1]} == {1e-4} and len(flat) == n + 1
    # frozen groups get no gradients
    net.set_trainable(2)
    trainable = [any(p.requires_grad for m in g for p in m.parameters()) for g in net.backbone_groups()]
    assert trainable == [False] * (n - 2) + [True, True]


def test_batchnorm_statistics_stay_frozen_while_fine_tuning() -> None:
    import torch

    from transferlab.strategies._network import build_net

    net = build_net("efficientnet_lite0", 2, 0.2, pretrained=False)
    net.freeze_bn = True  # what build_net sets for a pretrained backbone
    net.train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and net.head.training
    scratch = build_net("efficientnet_lite0", 2, 0.2, pretrained=False)
    scratch.freeze_bn = False
    scratch.train()
    assert all(m.training for m in scratch.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_save_load_round_trip(fitted, tmp_path: Path) -> None:  # noqa: ANN001
    clf, ds = fitted
    model, write = Model.from_strategy(clf, "image")
    model.save(tmp_path / "m", write)
    assert (tmp_path / "m" / "model.safetensors").exists() and (tmp_path / "m" / "history.json").exists()
    loaded = Model.load(tmp_path / "m")
    proba, ok, failures = loaded.predict_proba(ds.paths + [str(tmp_path / "missing.png")])
    assert ok == list(range(len(ds))) and list(failures) == [len(ds)]
    np.testing.assert_allclose(proba, clf.predict_proba(ds), atol=1e-6)


def test_probe_head_init_starts_from_the_linear_probe(tiny_digits: Path, cache_dir: Path) -> None:
    """LP-FT: with head_init='probe' the network starts as exactly the logistic-regression probe on the cached
    features (a learning rate of ~0 leaves it there), while a random head starts near chance."""
    from sklearn.linear_model import LogisticRegression

    from transferlab import runtime
    from transferlab.features.images import FeatureExtractor

    ds = ImageDataset.from_folder(tiny_digits)
    still = dict(FAST, lr=1e-12, head_lr=1e-12, augment=False, dropout=0.0, val_fraction=0.0)
    probe = make_strategy("finetune_top", n_groups=1, head_init="probe", **still).fit(ds)
    feats = FeatureExtractor("efficientnet_lite0", cache=runtime.get_cache(), input_size=64,
                             progress=False).extract(ds.paths, outputs=("features",)).arrays["features"]
    lr_proba = LogisticRegression(C=1.0, max_iter=5000, random_state=0).fit(feats, ds.y).predict_proba(feats)
    np.testing.assert_allclose(probe.predict_proba(ds), lr_proba, atol=2e-3)
    assert (probe.predict_proba(ds).argmax(1) == ds.y).mean() > 0.9
    random = make_strategy("finetune_top", n_groups=1, head_init="random", **still).fit(ds)
    assert (random.predict_proba(ds).argmax(1) == ds.y).mean() < 0.5


def test_probe_is_kept_when_fine_tuning_does_worse_on_held_out_images(tiny_digits: Path, cache_dir: Path,
                                                                         tmp_path: Path) -> None:
    """The default head starts from the probe and the probe is the fallback: a learning rate that wrecks the
    network (1e3) loses to it on the held-out part of train, so the pretrained network comes back with its probe
    refitted on all of train (what ``headless`` fits) and the saved history says so. A random head has no
    fallback."""
    ds = ImageDataset.from_folder(tiny_digits)
    # half held out: the probe (3 images per class) misses enough of them that fine-tuning could beat it
    wrecked = make_strategy("finetune_top", n_groups=1, **dict(FAST, lr=1e3, head_lr=1e3, val_fraction=0.5,
                                                               patience=None)).fit(ds)
    check = wrecked.probe_check_
    assert check["held_out"] == 30 and check["probe"]["val_accuracy"] <= 25 / 30 and "skipped" not in check
    assert check["kept"] == "probe" and check["probe"]["val_accuracy"] > check["fine_tuned"]["val_accuracy"]
    # what comes back is the headless model: logistic regression on every training image's frozen features
    from sklearn.linear_model import LogisticRegression

    from transferlab import runtime
    from transferlab.features.images import FeatureExtractor

    feats = FeatureExtractor("efficientnet_lite0", cache=runtime.get_cache(), input_size=64,
                             progress=False).extract(ds.paths, outputs=("features",)).arrays["features"]
    lr_proba = LogisticRegression(C=1.0, max_iter=5000, random_state=0).fit(feats, ds.y).predict_proba(feats)
    np.testing.assert_allclose(wrecked.predict_proba(ds), lr_proba, atol=2e-3)
    assert (wrecked.predict_proba(ds).argmax(1) == ds.y).mean() > 0.9
    wrecked.save_weights(tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["probe_check"]["kept"] == "probe" and history["schedule"]["lr"] == 1e3
    assert history["schedule"]["stages"] == [{"name": "last 1 groups", "trainable_groups": 1, "epochs": 1}]
    assert make_strategy("finetune_top", n_groups=1, head_init="random",
                         **dict(FAST, val_fraction=0.3)).fit(ds).probe_check_ is None


def test_fine_tuning_is_skipped_when_no_network_could_beat_the_probe(tiny_digits: Path, cache_dir: Path,
                                                                      tmp_path: Path) -> None:
    """With fewer than 5 held-out images the probe misses (here: 2 held out), no fine-tuned network could be
    significantly better, so the probe is kept without training: the same model (logistic regression on every
    training image's frozen features), no epochs run, and the saved history says why."""
    import shutil

    from sklearn.linear_model import LogisticRegression

    from transferlab import runtime
    from transferlab.features.images import FeatureExtractor
    from transferlab.strategies._fallback import can_be_beaten, mistakes_needed

    assert mistakes_needed() == 5 and not can_be_beaten([1] * 4 + [0] * 40) and can_be_beaten([1] * 5)
    two = tmp_path / "two"
    for name in sorted(p.name for p in tiny_digits.iterdir() if p.is_dir())[:2]:
        shutil.copytree(tiny_digits / name, two / name)
    ds = ImageDataset.from_folder(two)
    clf = make_strategy("gradual_unfreeze", **dict(FAST, val_fraction=0.2)).fit(ds)
    check = clf.probe_check_
    assert check["held_out"] == 2 and check["kept"] == "probe" and check["fine_tuned"] is None
    assert "fine-tuning skipped" in check["skipped"] and clf.history_ == []
    feats = FeatureExtractor("efficientnet_lite0", cache=runtime.get_cache(), input_size=64,
                             progress=False).extract(ds.paths, outputs=("features",)).arrays["features"]
    lr_proba = LogisticRegression(C=1.0, max_iter=5000, random_state=0).fit(feats, ds.y).predict_proba(feats)
    np.testing.assert_allclose(clf.predict_proba(ds), lr_proba, atol=2e-3)
    (tmp_path / "model").mkdir()
    clf.save_weights(tmp_path / "model")
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert history["stages"] == [] and history["probe_check"]["skipped"] == check["skipped"]
    # the schedule says nothing ran, and what would have
    assert history["schedule"]["stages"] == [] and history["schedule"]["planned_stages"][0]["epochs"] >= 1


def test_default_backbone_is_the_one_rank_puts_first(tiny_digits: Path, cache_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """backbone=auto (the default of the fine-tuning strategies) fine-tunes the image backbone that LogME ranks first
    on the training images: the network, its probe head and the saved model are that backbone's, and the ranking is
    printed and saved."""
    from sklearn.linear_model import LogisticRegression

    from transferlab import runtime
    from transferlab.features.images import FeatureExtractor
    from transferlab.features.ranking import rank_backbones
    from transferlab.strategies._network import AUTO_BACKBONE, NetworkStrategy

    ds = ImageDataset.from_folder(tiny_digits)
    pool = NetworkStrategy.backbones_needed(AUTO_BACKBONE)
    assert len(pool) >= 3 and "efficientnet_lite0" in pool
    ranked = [r["backbone"] for r in rank_backbones(ds, pool, task="image")]
    still = {k: v for k, v in FAST.items() if k != "backbone"}
    still.update(lr=1e-12, head_lr=1e-12, augment=False, dropout=0.0, val_fraction=0.0)
    clf = make_strategy("finetune_top", n_groups=1, **still)
    assert clf.backbone == "auto"
    monkeypatch.setenv("TRANSFERLAB_QUIET", "0")
    clf.fit(ds)
    assert clf.backbone_ == ranked[0] and [r["backbone"] for r in clf.backbone_ranking_] == ranked
    assert f"backbone {ranked[0]}, first by transferability" in capsys.readouterr().err
    # the network is that backbone: with a learning rate of ~0 it is its linear probe
    feats = FeatureExtractor(ranked[0], cache=runtime.get_cache(), input_size=64,
                             progress=False).extract(ds.paths, outputs=("features",)).arrays["features"]
    lr_proba = LogisticRegression(C=1.0, max_iter=5000, random_state=0).fit(feats, ds.y).predict_proba(feats)
    np.testing.assert_allclose(clf.predict_proba(ds), lr_proba, atol=2e-3)
    config = clf.save_weights(tmp_path)
    assert config["backbone"] == ranked[0]
    saved = json.loads((tmp_path / "history.json").read_text())["backbone_ranking"]
    assert [r["backbone"] for r in saved] == ranked and saved[0]["logme"] >= saved[-1]["logme"]
    with pytest.raises(Exception, match="random weights"):
        make_strategy("from_scratch", backbone="auto", **{k: v for k, v in FAST.items() if k != "backbone"}).fit(ds)


def test_schedule_rule_from_the_training_set_size() -> None:
    """The documented rule (SCHEDULE_DOC): about 120 optimizer steps in 2 to 8 passes, the reference learning rate
    times sqrt(n / 1000) below 1,000 images, with the probe head one rate for head and body and no label smoothing;
    gradual_unfreeze unfreezes one more group each time the set doubles beyond 100 images; values passed win."""
    from transferlab.strategies._network import schedule_rule

    small = schedule_rule(200, 13, 1e-4, head_from_probe=True)
    assert small["epochs"] == 8 and small["lr"] == pytest.approx(1e-4 * 0.2**0.5)
    assert small["head_lr"] == small["lr"] and small["label_smoothing"] == 0
    large = schedule_rule(20000, 1250, 1e-4, head_from_probe=False)
    assert large == {"epochs": 2, "lr": 1e-4, "head_lr": 1e-3, "label_smoothing": 0.1}
    assert schedule_rule(1000, 40, 3e-4, True)["epochs"] == 3

    def stages(n_train: int, **params):  # noqa: ANN003, ANN202
        clf = make_strategy("gradual_unfreeze", **params)
        clf.schedule_ = clf.resolve_schedule(n_train, -(-n_train // 16))
        return [(s.n_top_groups, s.epochs) for s in clf.stages(5, n_train)], clf.schedule_

    assert stages(150)[0] == [(1, 8)]  # the probe is the head stage: no head-only epochs
    assert stages(250)[0] == [(1, 1), (2, 7)]
    assert stages(450)[0] == [(1, 1), (2, 1), (3, 3)]  # 29 steps per epoch: 5 epochs in all
    assert stages(100000)[0] == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]  # all groups, 2 epochs budget
    assert stages(150, head_init="random")[0] == [(0, 2), (1, 8)]
    explicit, sched = stages(250, epochs=3, lr=1e-3, n_stages=1)
    assert explicit == [(1, 3)] and sched["lr"] == 1e-3 and sched["from_rule"] == ["head_lr", "label_smoothing"]


def test_probe_is_kept_unless_fine_tuning_is_significantly_better() -> None:
    """The fallback's rule, on held-out images (McNemar's exact test, one-sided, 5%): fixing 4 of the probe's
    mistakes and breaking none is within chance (p = 1/16), fixing 5 is not (1/32); fixing 8 and breaking 2 is still
    chance (p = 0.055); a network that is only more confident on the same answers does not replace the probe."""
    from transferlab.strategies._fallback import better, mcnemar_p

    assert mcnemar_p(4, 0) == 1 / 16 and mcnemar_p(5, 0) == 1 / 32 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(8, 2) == pytest.approx(56 / 1024) and mcnemar_p(9, 2) == pytest.approx(67 / 2048)
    probe = np.zeros(40, int)
    probe[:10] = 1  # 10 of 40 wrong

    def tuned(fixed: int, broken: int) -> np.ndarray:
        out = probe.copy()
        out[:fixed] = 0
        out[20 : 20 + broken] = 1
        return out

    assert better({"errors": probe}, {"errors": tuned(4, 0)})
    assert not better({"errors": probe}, {"errors": tuned(5, 0)})
    assert better({"errors": probe}, {"errors": tuned(8, 2)})
    assert not better({"errors": probe}, {"errors": tuned(9, 2)})
    assert better({"errors": probe, "val_loss": 0.3}, {"errors": probe, "val_loss": 0.01})


def test_orientation_augmentation_turns_and_flips_vertically() -> None:
    """augment=orientation (textures, aerial images) also gives upside-down and quarter-turned crops; the standard
    augmentation never turns an image."""
    from transferlab.preprocessing import Preprocessing
    from transferlab.strategies._network import ImageBatches

    prep = Preprocessing(size=16)
    # a vertical gradient: its rows differ, its columns are equal, so any turn or vertical flip shows
    img = np.repeat(np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[:, None, None], 16, 1), 3, 2)

    def turned(mode: str) -> int:
        batches = ImageBatches(["x"], np.zeros(1, np.int64), prep, 1, mode, seed=0)
        batches._pixels[0] = img
        count = 0
        for k in range(40):
            out = batches._item(0, np.random.default_rng(k)).astype(float).mean(2)
            col = out[:, 0]  # still a dark-to-light ramp from top to bottom when neither turned nor flipped
            upright = np.abs(out - col[:, None]).max() < 1.0 and np.all(np.diff(col) >= -1.0) and col[-1] > col[0]
            count += not upright
        return count

    assert turned("standard") == 0
    assert turned("orientation") > 20


@pytest.mark.parametrize("args", [
    ["--strategy", "finetune", "--param", "lr=-1"],
    ["--strategy", "finetune", "--param", "optimizer=lbfgs"],
    ["--strategy", "fine_tune_everything"],
    ["--strategy", "finetune_top", "--param", "n_groups=99"],
    ["--strategy", "finetune_top", "--param", "head_init=zeros"],
    ["--strategy", "finetune_top", "--param", "augment=sideways"],
    ["--strategy", "headless", "--resume"],
    ["--strategy", "finetune", "--param", "patience=-1"],  # would stop after the first epoch without improving
    ["--strategy", "gradual_unfreeze", "--param", "bf16=False"],  # the string "False", which Python reads as true
])
def test_bad_parameters_exit_2(args: list[str], tiny_digits: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--quiet", "train", str(tiny_digits), "--out", str(tmp_path / "m"), "--param", "input_size=64",
                 *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("transferlab: error:")


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "transferlab.cli", "--quiet", "train", str(data), "--strategy", "finetune",
            "--backbone", "efficientnet_lite0", "--param", "input_size=64", "--param", "epochs=2", "--param",
            "batch_size=16", "--param", "val_fraction=0.5", "--seed", "1", "--out", str(out), "--json", *extra]


def _metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in m.items() if "seconds" not in k}


def test_killed_run_resumes_to_the_same_result(tiny_digits: Path, tmp_path: Path) -> None:
    env = dict(os.environ, TRANSFERLAB_QUIET="1")
    full = subprocess.run(_train_cmd(tiny_digits, tmp_path / "full"), env=env, capture_output=True, text=True,
                          timeout=300)
    assert full.returncode == 0, full.stderr

    out = tmp_path / "resumed"
    checkpoint = tmp_path / ".resumed.checkpoint" / "stage0" / "checkpoint.pt"
    proc = subprocess.Popen(_train_cmd(tiny_digits, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint was written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be interrupted"
    assert not (out / "metrics.json").exists()

    resumed = subprocess.run(_train_cmd(tiny_digits, out, "--resume"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(out) == _metrics(tmp_path / "full")
    history = json.loads((out / "history.json").read_text())["stages"][0]["epochs"]
    assert [row["epoch"] for row in history] == [1, 2]  # epoch 1 from the checkpoint, epoch 2 after the resume
    assert not checkpoint.parent.parent.exists(), "checkpoints are removed once the model is saved"
