"""The extractive reader: a transformer body with a linear span head (start and end logit per token), sliding
windows over long passages, and n-best decoding back to character offsets. Shared by the ``qa_reader`` strategy
(training) and the saved-model loader (answering), so both decode identically.

Windows: the fast tokenizer encodes (question, context) pairs, question first, ``truncation="only_second"`` so
only the context is cut, ``max_length`` tokens per window and ``stride`` tokens of overlap between consecutive
windows of one passage; offsets map every context token back to characters. Questions longer than
:data:`MAX_QUESTION_TOKENS` are cut there (otherwise no room is left for the context).

Training labels: the token positions of the answer's first and last character in a window, or 0 (the [CLS]
position) when the answer is not wholly inside that window.

Decoding, per question over all its windows: the top ``n_best`` start and end tokens of each window, pairs with
end >= start, at most ``max_answer_tokens`` long, both inside the context, scored by start + end logit; the best
span's characters are cut from the original context. Its ``score`` is a softmax over the n-best candidates'
scores (a relative confidence among the candidates, not a calibrated probability of being right). For SQuAD 2.0
readers, ``null_threshold`` (not None) answers "" when the best [CLS] score (start + end at position 0) beats the
best span by more than the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from transferlab._torch import to_device, torch_device
from transferlab_runtime import MAX_QUESTION_TOKENS, decode_spans


class SpanReader(nn.Module):
    """``forward((ids, mask, type_ids or None)) -> (batch, length, 2)`` start and end logits."""

    def __init__(self, body: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(body.config.hidden_size, 2)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        ids, mask, types = inputs
        kwargs = {"token_type_ids": types} if types is not None else {}
        hidden = self.body(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state
        logits = self.head(self.dropout(hidden))
        return logits.masked_fill(~mask.bool().unsqueeze(-1), -1e4)  # padding is never an answer


@dataclass
class Windows:
    """The encoded windows of many (question, context) pairs. ``example[w]`` is the pair of window ``w``;
    ``offsets[w][t]`` the (start, end) characters of token ``t`` in its context, or None outside the context."""

    input_ids: list[list[int]]
    type_ids: list[list[int]] | None
    example: np.ndarray
    offsets: list[list[tuple[int, int] | None]]
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # labels, when answers were given
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.asarray([len(s) for s in self.input_ids])


def _cut_questions(tokenizer: Any, questions: Sequence[str]) -> list[str]:  # noqa: ANN401
    """Questions cut at :data:`MAX_QUESTION_TOKENS` tokens (by characters, so the text stays as typed)."""
    enc = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for q, offsets in zip(questions, enc["offset_mapping"], strict=True):
        out.append(q[: offsets[MAX_QUESTION_TOKENS - 1][1]] if len(offsets) > MAX_QUESTION_TOKENS else q)
    return out


def encode_windows(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str],  # noqa: ANN401
                   max_length: int, stride: int,
                   answers: Sequence[tuple[int, int] | None] | None = None) -> Windows:
    """Windows of every pair; with ``answers`` ((start char, end char exclusive) or None per pair), the start and end
    token labels of each window (0 when its answer is not inside)."""
    if not len(questions):
        return Windows([], None, np.zeros(0, np.int64), [])
    enc = tokenizer(_cut_questions(tokenizer, questions), list(contexts), truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    sample = np.asarray(enc["overflow_to_sample_mapping"], np.int64)
    offsets: list[list[tuple[int, int] | None]] = []
    starts, ends = np.zeros(len(sample), np.int64), np.zeros(len(sample), np.int64)
    for w in range(len(sample)):
        seq = enc.sequence_ids(w)
        offs = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq, strict=True)]
        offsets.append(offs)  # type: ignore[arg-type]
        span = answers[sample[w]] if answers is not None else None
        if span is None:
            continue
        a, b = span
        ctx = [t for t, o in enumerate(offs) if o is not None]
        if not ctx or offs[ctx[0]][0] > a or offs[ctx[-1]][1] < b:  # type: ignore[index]
            continue  # the answer is not wholly in this window: label [CLS]
        s = next(t for t in ctx if offs[t][1] > a)  # type: ignore[index]
        e = next(t for t in reversed(ctx) if offs[t][0] < b)  # type: ignore[index]
        if e >= s:
            starts[w], ends[w] = s, e
    types = enc.get("token_type_ids")
    return Windows(enc["input_ids"], types, sample, offsets, starts, ends)


def collate_windows(windows: Windows, chunk: Sequence[int], pad_id: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(ids, mask, type_ids or None) of some windows, padded to the longest of them."""
    n = max(len(windows.input_ids[i]) for i in chunk)
    ids = np.full((len(chunk), n), pad_id, np.int64)
    mask = np.zeros((len(chunk), n), np.int64)
    types = np.zeros((len(chunk), n), np.int64) if windows.type_ids is not None else None
    for r, i in enumerate(chunk):
        seq = windows.input_ids[i]
        ids[r, : len(seq)] = seq
        mask[r, : len(seq)] = 1
        if types is not None:
            types[r, : len(seq)] = windows.type_ids[i]  # type: ignore[index]
    return (torch.from_numpy(ids), torch.from_numpy(mask),
            torch.from_numpy(types) if types is not None else None)


def window_logits(net: SpanReader, windows: Windows, batch_size: int = 32, pad_id: int = 0,
                  progress: Any = None, bf16: bool = False,  # noqa: ANN401
                  only: np.ndarray | None = None) -> list[np.ndarray]:
    """(length, 2) float32 logits per window, in order; batches of similar length (little padding). ``bf16``: under
    CPU bfloat16 autocast (see :func:`transferlab._torch.native_bf16`). ``only``: run just these windows (the
    others get a (0, 2) array)."""
    out: list[np.ndarray] = [np.zeros((0, 2), np.float32)] * len(windows)
    lengths = windows.lengths()
    chosen = np.arange(len(windows)) if only is None else np.asarray(only, np.int64)
    order = chosen[np.argsort(lengths[chosen], kind="stable")]
    if net.training:  # eval() walks every module: ~2.5 ms of a one-question answer
        net.eval()
    device = torch_device()
    if next(net.parameters()).device.type != device:  # moving is a walk over every parameter: ~3.5 ms per call
        net.to(device)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device == "cpu"):
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            logits = net(to_device(collate_windows(windows, chunk, pad_id), device)).float().cpu().numpy()
            for r, i in enumerate(chunk):
                out[i] = logits[r, : len(windows.input_ids[i])]
            if progress is not None:
                progress(len(chunk))
    return out


def decode(windows: Windows, logits: Sequence[np.ndarray], contexts: Sequence[str], n_best: int = 20,
           max_answer_tokens: int = 30, null_threshold: float | None = None) -> list[dict[str, Any]]:
    """The best answer per pair: ``{"answer", "start" (character), "score", "candidates"}``; ``answer`` is "" and
    ``start`` -1 when no span is possible (or, with ``null_threshold``, when "no answer" wins). The decoding is the
    exported runtime's (:func:`transferlab_runtime.decode_spans`), so an exported reader answers the same."""
    return decode_spans(windows.example, windows.offsets, logits, contexts, n_best, max_answer_tokens,
                        null_threshold)


def answer(net: SpanReader, tokenizer: Any, questions: Sequence[str], contexts: Sequence[str],  # noqa: ANN401
           max_length: int, stride: int, max_answer_tokens: int = 30, n_best: int = 20,
           null_threshold: float | None = None, batch_size: int = 32, progress: Any = None,  # noqa: ANN401
           bf16: bool = False) -> list[dict[str, Any]]:
    """Answer each question from its context: all windows of all pairs are run through the network in batches (many
    questions about one passage share a batch), then decoded per pair."""
    windows = encode_windows(tokenizer, questions, contexts, max_length, stride)
    logits = window_logits(net, windows, batch_size, tokenizer.pad_token_id or 0, progress, bf16)
    return decode(windows, logits, contexts, n_best, max_answer_tokens, null_threshold)


def span_batches(windows: Windows, batches: Sequence[np.ndarray], pad_id: int = 0
                 ) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]]:
    """(inputs, (batch, 2) start/end targets) for the training loop."""
    for chunk in batches:
        targets = torch.from_numpy(np.stack([windows.starts[chunk], windows.ends[chunk]], 1))
        yield collate_windows(windows, chunk, pad_id), targets


def teacher_span_targets(net: SpanReader, tokenizer: Any, questions: Sequence[str],  # noqa: ANN401
                         contexts: Sequence[str], student: Windows, max_length: int, stride: int,
                         bf16: bool = False, batch_size: int = 32, progress: Any = None,  # noqa: ANN401
                         answers: Sequence[tuple[int, int] | None] | None = None) -> list[np.ndarray]:
    """A teacher reader's start and end logits on a student's windows, for distillation: the teacher runs on its own
    windows (its tokenizer may differ), each logit is keyed by the character where its token starts (start logit)
    or ends (end logit), the highest over the teacher's windows of a pair; a student token takes the logits of the
    teacher token with its start or end character. Positions with none (question, special tokens, tokens the two
    tokenizers split differently) get -1e4: no teacher mass there. With ``answers`` (character spans, as for
    :func:`encode_windows`) the teacher runs only on its windows that hold the answer, the only ones a student
    distils from (about half of SQuAD's windows: half the teacher's time)."""
    tw = encode_windows(tokenizer, questions, contexts, max_length, stride, answers)
    only = np.flatnonzero(tw.starts > 0) if answers is not None else None
    logits = window_logits(net, tw, batch_size, tokenizer.pad_token_id or 0, progress, bf16, only)
    starts: list[dict[int, float]] = [{} for _ in questions]
    ends: list[dict[int, float]] = [{} for _ in questions]
    for w, (offs, lg) in enumerate(zip(tw.offsets, logits, strict=True)):
        if not len(lg):
            continue
        s, e = starts[tw.example[w]], ends[tw.example[w]]
        for t, o in enumerate(offs):
            if o is None:
                continue
            s[o[0]] = max(s.get(o[0], -1e4), float(lg[t, 0]))
            e[o[1]] = max(e.get(o[1], -1e4), float(lg[t, 1]))
    out = []
    for w, offs in enumerate(student.offsets):
        s, e = starts[student.example[w]], ends[student.example[w]]
        arr = np.full((len(offs), 2), -1e4, np.float32)
        for t, o in enumerate(offs):
            if o is not None:
                arr[t, 0], arr[t, 1] = s.get(o[0], -1e4), e.get(o[1], -1e4)
        out.append(arr)
    return out


def distill_batches(windows: Windows, soft: Sequence[np.ndarray], use: np.ndarray, batches: Sequence[np.ndarray],
                    pad_id: int = 0) -> Iterator[tuple[Any, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """(inputs, (start/end targets, the teacher's logits padded with -1e4, whether to distil each window))."""
    for chunk, (inputs, targets) in zip(batches, span_batches(windows, batches, pad_id), strict=True):
        teacher = np.full((len(chunk), inputs[0].shape[1], 2), -1e4, np.float32)
        for r, i in enumerate(chunk):
            teacher[r, : len(soft[i])] = soft[i]
        yield inputs, (targets, torch.from_numpy(teacher), torch.from_numpy(use[chunk].astype(np.float32)))
