"""The one table from a saved model's ``weights.kind`` to the function that rebuilds its predictor.

A loader is ``load(directory, config) -> predictor``, where a predictor has ``predict_proba(inputs) -> (proba, ok
indices, {index: reason})``. Loaders live in :mod:`transferlab.model.image_loaders` and
:mod:`transferlab.model.text_loaders` and never import training code (strategies, workflows). Each is imported only
when a model of its kind is loaded, so loading a TF-IDF model never imports torch. Adding a saved kind = one loader
function + one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transferlab.errors import UserError

LOADERS: dict[str, str] = {
    "features+head": "transferlab.model.image_loaders:load_features_head",
    "ensemble": "transferlab.model.image_loaders:load_ensemble",
    "network": "transferlab.model.image_loaders:load_network",
    "text_embedding+head": "transferlab.model.text_loaders:load_embedding_head",
    "text_tfidf+head": "transferlab.model.text_loaders:load_tfidf_head",
    "text_tfidf+embedding+head": "transferlab.model.text_loaders:load_tfidf_embedding_head",
    "text_wordnet": "transferlab.model.text_loaders:load_wordnet",
    "text_transformer": "transferlab.model.text_loaders:load_transformer",
    "text_tuned_embedding+head": "transferlab.model.text_loaders:load_tuned_embedding_head",
    "qa_reader": "transferlab.model.qa_loaders:load_qa_reader",
}


def loader_for(kind: str | None) -> Callable[[Path, dict[str, Any]], Any]:
    """The loader of a ``weights.kind``; an unknown kind (a newer transferlab, a damaged config) is a user error."""
    if kind not in LOADERS:
        raise UserError(f"unknown weights kind {kind!r} (this transferlab loads: {', '.join(sorted(LOADERS))})")
    module, name = LOADERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def load_predictor(directory: Path, config: dict[str, Any]) -> Any:
    """The predictor of the model saved in ``directory`` with this ``config``. A file of it that is missing,
    truncated or does not fit the config is a damaged model folder (a user error that names the folder)."""
    from safetensors import SafetensorError

    load = loader_for(config.get("weights", {}).get("kind"))
    try:
        return load(Path(directory), config)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise UserError(f"{directory}: damaged model folder ({type(exc).__name__}: {exc})") from None
