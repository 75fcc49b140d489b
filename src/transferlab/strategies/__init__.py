"""The strategy registry. A new strategy is one new module defining a :class:`Strategy` subclass, plus one line here."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import Strategy
from .finetune import Finetune
from .finetune_top import FinetuneTop
from .from_scratch import FromScratch
from .frozen_head import FrozenHead
from .gradual_unfreeze import GradualUnfreeze
from .headless import Headless
from .text_bow import TextBow
from .text_embedding_cnn import TextEmbeddingCNN
from .text_embedding_rnn import TextEmbeddingRNN
from .text_fewshot import TextFewShot
from .text_finetune import TextFinetune
from .text_headless import TextHeadless
from .text_zeroshot import TextZeroShot

_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (Headless, FrozenHead, Finetune, FinetuneTop, GradualUnfreeze, FromScratch):
    register(_cls)
for _cls in (TextBow, TextHeadless, TextZeroShot,  # modality "text"
             TextEmbeddingCNN, TextEmbeddingRNN, TextFinetune, TextFewShot):
    register(_cls)


def strategy_names(modality: str | None = None) -> list[str]:
    return [n for n, c in _REGISTRY.items() if modality is None or c.modality == modality]


def get_strategy_class(name: str, modality: str | None = None) -> type[Strategy]:
    cls = _REGISTRY.get(name)
    if cls is None or (modality is not None and cls.modality != modality):
        raise UserError(f"unknown strategy {name!r}; available: {', '.join(strategy_names(modality))}")
    return cls


def make_strategy(name: str, modality: str | None = None, **params: Any) -> Strategy:
    cls = get_strategy_class(name, modality)
    valid = set(cls._param_names())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise UserError(f"strategy {name!r} has no parameter(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(sorted(valid))}")
    return cls(**params)


__all__ = ["Strategy", "get_strategy_class", "make_strategy", "register", "strategy_names"]
