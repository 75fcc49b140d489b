"""Every strategy honours the estimator contract; fitted strategies save and load to the same predictions."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.data import ImageDataset, resolve_image_data
from transferlab.errors import UserError
from transferlab.model import Model
from transferlab.strategies import get_strategy_class, make_strategy

FEATURE_STRATEGIES = [("headless", {}), ("headless", {"classifier": "svm"}), ("headless", {"classifier": "knn"}),
                      ("headless", {"layer": "mid"}), ("frozen_head", {}),
                      ("frozen_head", {"hidden": 0})]


@pytest.fixture(scope="module")
def digits_split(digits_dir, cache_dir) -> tuple[ImageDataset, ImageDataset]:
    train, ev, _ = resolve_image_data(digits_dir, val_fraction=0.25, seed=0)
    return train, ev


@pytest.mark.parametrize(("name", "params"), FEATURE_STRATEGIES)
def test_contract_fit_predict_save_load(name, params, digits_split, tmp_path) -> None:
    train, ev = digits_split
    strategy = make_strategy(name, **params)
    assert strategy.get_params()["backbone"] == "efficientnet_lite0"
    assert not [k for k in vars(strategy) if k.endswith("_")], "learned state before fit"
    clone = strategy.clone()
    assert clone.get_params() == strategy.get_params() and clone is not strategy
    assert strategy.fit(train) is strategy
    assert strategy.classes_ == [str(i) for i in range(10)]
    proba = strategy.predict_proba(ev)
    assert proba.shape == (len(ev), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    accuracy = float((np.asarray(strategy.predict(ev)) == np.asarray(ev.labels)).mean())
    assert accuracy > 0.5, f"{name} {params}: {accuracy}"  # chance is 0.1
    # the clone was not fitted along with the original
    assert not hasattr(clone, "classes_")
    model, write = Model.from_strategy(strategy, "image", extra={"backbone": "efficientnet_lite0"})
    model.save(tmp_path / "m", write)
    loaded = Model.load(tmp_path / "m")
    proba2, ok, failures = loaded.predict_proba(ev.paths)
    assert ok == list(range(len(ev))) and not failures
    np.testing.assert_allclose(proba2, proba, atol=1e-5)


def test_ensemble_averages_its_members_and_reloads(digits_split, tmp_path) -> None:
    from transferlab.workflows.rank import rank_backbones

    train, ev = digits_split
    pair = make_strategy("headless_ensemble", backbone="efficientnet_lite0+squeezenet1_1")
    assert pair.get_params() == {"backbone": "efficientnet_lite0+squeezenet1_1", "top": 2, "C": 1.0, "seed": 0}
    assert pair.fit(train) is pair and pair.backbones_ == ["efficientnet_lite0", "squeezenet1_1"]
    proba = pair.predict_proba(ev)
    singles = [make_strategy("headless", backbone=b).fit(train).predict_proba(ev) for b in pair.backbones_]
    np.testing.assert_allclose(proba, (singles[0] + singles[1]) / 2, atol=1e-9)
    assert not np.allclose(proba, singles[0])
    model, write = Model.from_strategy(pair, "image", extra={"backbone": "+".join(pair.backbones_)})
    model.save(tmp_path / "m", write)
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.is_dir()) == ["member0", "member1"]
    loaded = Model.load(tmp_path / "m")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    proba2, ok, failures = loaded.predict_proba([*ev.paths, str(broken)])
    assert ok == list(range(len(ev))) and list(failures) == [len(ev)]
    np.testing.assert_allclose(proba2, proba, atol=1e-5)
    # by default the pool is every backbone, and the two that rank scores highest on the training data are used
    ranked = [r["backbone"] for r in rank_backbones(train)]
    assert make_strategy("headless_ensemble").fit(train).backbones_ == ranked[:2]
    assert make_strategy("headless_ensemble", top=3).fit(train).backbones_ == ranked[:3]
    with pytest.raises(UserError, match="unknown backbone"):
        make_strategy("headless_ensemble", backbone="efficientnet_lite0+resnet9000").fit(train)
    with pytest.raises(UserError, match="top must be"):
        make_strategy("headless_ensemble", top=0).fit(train)


def test_same_seed_same_numbers(digits_split) -> None:
    train, ev = digits_split
    a = make_strategy("frozen_head", epochs=15, seed=3).fit(train).predict_proba(ev)
    b = make_strategy("frozen_head", epochs=15, seed=3).fit(train).predict_proba(ev)
    c = make_strategy("frozen_head", epochs=15, seed=4).fit(train).predict_proba(ev)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_parameters_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown strategy"):
        get_strategy_class("nope")
    with pytest.raises(UserError, match="no parameter"):
        make_strategy("headless", colour="blue")
    with pytest.raises(UserError, match="unknown backbone"):
        make_strategy("headless", backbone="resnet9000").fit(ImageDataset(["x"], ["a"]))
