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
