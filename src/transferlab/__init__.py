"""transferlab: transfer learning on images and text for small labelled datasets, offline, on a CPU.

The verbs are importable from here, loaded on first use so that ``import transferlab`` stays cheap (no torch, no
scikit-learn until a verb needs them)::

    import transferlab

    result = transferlab.train("photos/", out="model")
    model = transferlab.load_model("model")
    model.predict(["a.jpg", open("b.png", "rb").read()], top_k=3)
"""

from __future__ import annotations

import importlib
from typing import Any

from transferlab._version import __version__

# public name -> the module that defines it (imported on first access)
_EXPORTS: dict[str, str] = {
    "train": "transferlab.workflows.train",
    "evaluate": "transferlab.workflows.train",
    "compare": "transferlab.workflows.compare",
    "rank": "transferlab.workflows.rank",
    "pretrain_text": "transferlab.workflows.pretrain_text",
    "audit": "transferlab.workflows.audit",
    "zeroshot": "transferlab.workflows.zeroshot",
    "build_index": "transferlab.workflows.search",
    "add_to_index": "transferlab.workflows.search",
    "load_index": "transferlab.workflows.search",
    "load_model": "transferlab.model",
    "predict": "transferlab.model",
    "list_backbones": "transferlab.backbones",
    "make_strategy": "transferlab.strategies",
    "strategy_names": "transferlab.strategies",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'transferlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
