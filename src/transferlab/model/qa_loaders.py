"""Loader of saved question-answering readers (``weights.kind`` ``qa_reader``), with no training code: the body is
rebuilt from the saved ``transformer/config.json`` and tokenizer, the weights come from ``model.safetensors``, and
answering uses the same windowing and decoding as training (:mod:`transferlab.nn.qa`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transferlab.errors import UserError


def saved_reader_weights(directory: Path) -> dict[str, Any]:
    """The ``weights`` entry of a saved reader's config.json ({} when the folder has none): its body, windows."""
    path = Path(directory) / "config.json"
    return json.loads(path.read_text()).get("weights", {}) if path.exists() else {}


def load_reader_net(directory: Path, config: dict[str, Any] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(SpanReader in eval mode, tokenizer, the config's ``weights`` entry) of a saved reader."""
    from safetensors.torch import load_file

    from transferlab.nn.qa import SpanReader
    from transferlab.nn.transformer import body_from_config

    if config is None:
        path = directory / "config.json"
        if not path.exists():
            raise UserError(f"{directory}: not a transferlab model folder (no config.json)")
        config = json.loads(path.read_text())
    w = config.get("weights", {})
    if w.get("kind") != "qa_reader":
        raise UserError(f"{directory}: not a question-answering reader (weights kind {w.get('kind')!r}); "
                        "train one with `transferlab qa train`")
    body, tokenizer = body_from_config(directory / w["transformer"])
    net = SpanReader(body)
    net.load_state_dict(load_file(str(directory / w["file"])))
    net.eval()
    return net, tokenizer, w


class QAPredictor:
    """Answers questions about passages: ``answer(questions, contexts)``. It does not classify: ``predict_proba``
    (what ``transferlab predict`` calls) says so."""

    def __init__(self, net: Any, tokenizer: Any, weights: dict[str, Any]) -> None:  # noqa: ANN401
        from transferlab._torch import bf16_linears, native_bf16

        self.bf16 = native_bf16()  # a CPU with bf16 matrix units answers ~2x faster in bf16
        self.net = bf16_linears(net) if self.bf16 else net
        self.tokenizer = tokenizer
        self.weights = weights

    def answer(self, questions: Sequence[str], contexts: Sequence[str], batch_size: int = 32,
               progress: Any = None) -> list[dict[str, Any]]:  # noqa: ANN401
        """The best answer per (question, context) pair: ``answer``, ``start`` (character), ``score``,
        ``candidates``; all windows share batches."""
        from transferlab._torch import set_torch_threads
        from transferlab.nn.qa import answer

        set_torch_threads()
        w = self.weights
        return answer(self.net, self.tokenizer, questions, contexts, int(w["max_length"]), int(w["stride"]),
                      int(w.get("max_answer_tokens", 30)), int(w.get("n_best", 20)), w.get("null_threshold"),
                      batch_size, progress, self.bf16)

    def predict_proba(self, inputs: Sequence[object]) -> Any:  # noqa: ANN401
        raise UserError("this model is a question-answering reader: use `transferlab qa ask` or `qa evaluate`")


def load_qa_reader(directory: Path, config: dict[str, Any]) -> QAPredictor:
    net, tokenizer, weights = load_reader_net(directory, config)
    return QAPredictor(net, tokenizer, weights)
