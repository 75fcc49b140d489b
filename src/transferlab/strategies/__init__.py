"""The strategy registry. A new strategy is one new module defining a :class:`Strategy` subclass, plus one line in
``_TABLE`` here."""

from __future__ import annotations

import importlib
from typing import Any

from transferlab.errors import UserError
from transferlab.strategies.base import Strategy

# name -> (module, class, modality). Modules are imported on first use, so a run of `headless` never pays for
# importing torch (about 2 s of a cold start) and the text stack stays out of image runs.
_TABLE: dict[str, tuple[str, str, str]] = {
    "headless": ("headless", "Headless", "image"),
    "headless_ensemble": ("headless_ensemble", "HeadlessEnsemble", "image"),
    "frozen_head": ("frozen_head", "FrozenHead", "image"),
    "finetune": ("finetune", "Finetune", "image"),
    "finetune_top": ("finetune_top", "FinetuneTop", "image"),
    "gradual_unfreeze": ("gradual_unfreeze", "GradualUnfreeze", "image"),
    "from_scratch": ("from_scratch", "FromScratch", "image"),
    "bow": ("text_bow", "TextBow", "text"),
    "text_headless": ("text_headless", "TextHeadless", "text"),
    "text_zeroshot": ("text_zeroshot", "TextZeroShot", "text"),
    "text_embedding_cnn": ("text_embedding_cnn", "TextEmbeddingCNN", "text"),
    "text_embedding_rnn": ("text_embedding_rnn", "TextEmbeddingRNN", "text"),
    "text_finetune": ("text_finetune", "TextFinetune", "text"),
    "text_fewshot": ("text_fewshot", "TextFewShot", "text"),
    "text_hybrid": ("text_hybrid", "TextHybrid", "text"),
}
_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Register a strategy class defined outside this package (plugins, tests)."""
    _REGISTRY[cls.name] = cls
    _TABLE.setdefault(cls.name, (cls.__module__, cls.__qualname__, cls.modality))
    return cls


def strategy_names(modality: str | None = None) -> list[str]:
    return [n for n, (_, _, m) in _TABLE.items() if modality is None or m == modality]


def get_strategy_class(name: str, modality: str | None = None) -> type[Strategy]:
    entry = _TABLE.get(name)
    if entry is None or (modality is not None and entry[2] != modality):
        raise UserError(f"unknown strategy {name!r}; available: {', '.join(strategy_names(modality))}")
    if name not in _REGISTRY:
        module, cls_name, _ = entry
        where = f"{__name__}.{module}" if "." not in module else module
        _REGISTRY[name] = getattr(importlib.import_module(where), cls_name)
    return _REGISTRY[name]


def make_strategy(name: str, modality: str | None = None, **params: Any) -> Strategy:
    """A new, unfitted strategy; an unknown parameter raises :class:`~transferlab.errors.ParameterError`, a
    ``UserError`` whose message lists the parameters the strategy takes (the CLI prints it as is), and so does a
    value that is not a number for a parameter that takes only numbers."""
    cls = get_strategy_class(name, modality)
    cls.check_param_names(params)
    cls.check_param_values(params)
    return cls(**params)


__all__ = ["Strategy", "get_strategy_class", "make_strategy", "register", "strategy_names"]
