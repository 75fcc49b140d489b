"""Every registered strategy is a scikit-learn classifier: scikit-learn's own estimator checks pass over the whole
registry, and scikit-learn's tools (``cross_val_score``, ``GridSearchCV``) run on plain lists of texts and of image
paths with real models and real data."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_set_params,
)

from conftest import shared_dataset
from transferlab.data.texts import TextDataset
from transferlab.errors import ParameterError, UserError
from transferlab.strategies import make_strategy, strategy_names

N_TEXTS = 400  # ag_news train.csv is shuffled: its first rows hold all four topics in about equal numbers
TOPICS = ["Business", "Sci/Tech", "Sports", "World"]


def _unfitted_input(modality: str, tmp_path: Path) -> list[str]:
    """Input a fitted strategy would read; the file does not exist, so only an up-front fitted check passes."""
    return [str(tmp_path / "missing.png")] if modality == "image" else ["a text that is never read"]


@pytest.mark.parametrize("name", strategy_names())
def test_scikit_learn_estimator_checks(name: str) -> None:
    strategy = make_strategy(name)
    assert is_classifier(strategy)
    tags = get_tags(strategy)
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    copy = clone(strategy)
    assert type(copy) is type(strategy) and copy is not strategy and copy.get_params() == strategy.get_params()
    assert list(strategy.get_params()) == type(strategy)._param_names()  # signature order, as the CLI lists them
    for check in (check_estimator_cloneable, check_estimator_repr, check_no_attributes_set_in_init,
                  check_get_params_invariance):
        check(name, strategy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_set_params(name, strategy)  # warns (does not fail) when set_params raises or validates early
    assert not [w for w in caught if "set_params" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.parametrize("name", strategy_names())
def test_not_fitted_and_unknown_parameters(name: str, tmp_path: Path) -> None:
    strategy = make_strategy(name)
    X = _unfitted_input(strategy.modality, tmp_path)  # noqa: N806
    with pytest.raises(NotFittedError):
        strategy.predict_proba(X)
    with pytest.raises(NotFittedError):
        strategy.predict(X)
    with pytest.raises(NotFittedError):
        strategy.score(X, ["a"])
    with pytest.raises(NotFittedError):
        strategy.save_weights(tmp_path)
    assert list(tmp_path.iterdir()) == []
    before = strategy.get_params()
    with pytest.raises(ValueError, match="has no parameter") as info:
        strategy.set_params(seed=1, colour="blue")
    assert isinstance(info.value, UserError) and isinstance(info.value, ParameterError)
    assert strategy.get_params() == before, "a failed set_params changed parameters"
    with pytest.raises(UserError, match=r"has no parameter\(s\) colour; it takes: "):
        make_strategy(name, colour="blue")


@pytest.fixture(scope="module")
def news() -> tuple[list[str], list[str]]:
    """The first rows of ag_news' train split: real news texts, four topics (chance 0.25)."""
    path = shared_dataset("ag_news") / "train.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for _, r in zip(range(N_TEXTS), csv.DictReader(f), strict=False)]
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    assert sorted(set(labels)) == TOPICS
    return texts, labels


def test_cross_val_score_bow_on_a_list_of_texts(news, cache_dir) -> None:
    texts, labels = news
    scores = cross_val_score(make_strategy("bow"), texts, labels, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.6, scores  # chance is 0.25
    # integer labels and NumPy arrays work the same: the classes are the labels as strings
    as_ints = np.asarray([TOPICS.index(v) for v in labels])
    np.testing.assert_array_equal(cross_val_score(make_strategy("bow"), np.asarray(texts), as_ints, cv=3), scores)


def test_plain_list_equals_dataset(news, cache_dir) -> None:
    texts, labels = news
    train, test = slice(0, 300), slice(300, None)
    plain = make_strategy("bow").fit(texts[train], labels[train])
    assert plain.classes_ == TOPICS
    dataset = make_strategy("bow").fit(TextDataset.from_texts(texts[train], labels[train]))
    np.testing.assert_array_equal(plain.predict_proba(texts[test]),
                                  dataset.predict_proba(TextDataset.from_texts(texts[test])))
    predicted = plain.predict(texts[test])
    assert set(predicted) <= set(TOPICS)
    assert plain.score(texts[test], labels[test]) == float((predicted == np.asarray(labels[test])).mean()) > 0.6
    with pytest.raises(UserError, match="fit needs labels"):
        make_strategy("bow").fit(texts)


def test_grid_search_over_bow_c(news, cache_dir) -> None:
    texts, labels = news
    search = GridSearchCV(make_strategy("bow"), {"C": [1.0, 10.0]}, cv=2).fit(texts, labels)
    assert search.best_params_["C"] in (1.0, 10.0)
    assert search.best_score_ > 0.6  # chance is 0.25
    assert search.best_estimator_.C == search.best_params_["C"] and search.best_estimator_.classes_ == TOPICS
    assert set(search.predict(texts[:20])) <= set(TOPICS)


def test_cross_val_score_headless_on_a_list_of_image_paths(digits_dir, cache_dir) -> None:
    paths = np.asarray(sorted(str(p) for p in digits_dir.glob("*/*.png")))
    labels = [Path(p).parent.name for p in paths]
    assert len(paths) == 120 and len(set(labels)) == 10
    scores = cross_val_score(make_strategy("headless"), paths, labels, cv=3)
    # chance is 0.1; 80 training images per fold give about 0.7 (0.725, 0.725, 0.625 on CPU)
    assert scores.shape == (3,) and scores.mean() > 0.5 and scores.min() > 0.4, scores
