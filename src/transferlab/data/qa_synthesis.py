"""Question-answer pairs synthesised from unlabelled passages, by rules (the SynNet idea without a generator model),
for ``transferlab qa adapt``: the reader then learns the new domain's vocabulary and style of passage from
questions whose answers are known spans.

For each sentence of a passage, candidate answers are found by simple surface rules, in this order of preference:

- a year (``1998``) -> "what year"; another number, with its unit word if one follows (``12 people``, ``$30``,
  ``40%``) -> "how many" / "how much" (money, percentages);
- a run of capitalised words not at the start of the sentence (``Amazon Prime``, ``New York``) -> "who" when it
  looks like a person (a title such as Mr/Dr or "by" before it, or followed by said/says/wrote), "where" after
  in/at/from/to, else "what";
- a noun phrase after a determiner (``the battery life``, ``a cheap charger``) -> "what".

The question is the sentence with the answer replaced by the wh-word and a question mark at the end (cloze
style: "The charger died after what time?"); when the answer opens the sentence the wh-word opens the question. The
answer is the exact span of the passage (``answer_start`` is its character offset), so the reader trains on it like
on SQuAD. Sentences of fewer than 6 or more than 60 words are skipped; each passage gives at most ``per_passage``
questions, spread over its sentences and the answer kinds, chosen by a seeded generator.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from transferlab.data.squad import QAExample

_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_NUMBER = re.compile(r"(\$\s?)?\b\d[\d,]*(?:\.\d+)?\b(\s?%|\s(?:percent|per cent))?"
                     r"(\s(?:[a-z]+s|hours?|days?|weeks?|months?|years?|minutes?|miles?|dollars?|stars?))?")
_CAPS = re.compile(r"\b(?:[A-Z][\w'&-]*)(?:\s+(?:of|de|the|and|[A-Z][\w'&-]*))*(?<=[\w'&-])")
_NOUN_PHRASE = re.compile(r"\b(?:the|a|an|this|my|his|her|their|its|our)\s+((?:[a-z][\w'-]*\s+){0,2}[a-z][\w'-]{2,})"
                          r"(?=\s*(?:[.,;:!?]|\s(?:is|was|are|were|has|had|in|on|for|to|that|which|and|but)\b))")
_PERSON_BEFORE = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sir|President|King|Queen|Saint|St)\.?\s*$")
_PLACE_BEFORE = re.compile(r"\b(?:in|at|from|near|into|to)\s+(?:the\s+)?$")
_AGENT_BEFORE = re.compile(r"\bby\s+$")
_PERSON_AFTER = re.compile(r"^\s+(?:said|says|wrote|argued|told|asked|explained|claimed|was born)\b")
_STOP_CAPS = {"I", "The", "A", "An", "It", "This", "That", "These", "Those", "He", "She", "They", "We", "You",
              "My", "Our", "Their", "His", "Her", "Its", "In", "On", "At", "But", "And", "If", "So", "Or", "Also",
              "However", "When", "While", "After", "Before", "OK", "Ok"}


def sentences(passage: str) -> list[tuple[int, str]]:
    """(character offset, text) of each sentence, split after . ! or ? (abbreviations may split early; a short
    fragment is then skipped)."""
    out = []
    for m in _SENTENCE.finditer(passage):
        text = m.group(0)
        lead = len(text) - len(text.lstrip())
        text = text.strip()
        if text:
            out.append((m.start() + lead, text))
    return out


def _candidates(sentence: str) -> list[tuple[int, int, str]]:
    """(start, end, wh-word) answer candidates in one sentence, by kind."""
    found: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(a: int, b: int, wh: str) -> None:
        if b - a < 2 or any(a < y and x < b for x, y in taken):
            return
        taken.append((a, b))
        found.append((a, b, wh))

    for m in _YEAR.finditer(sentence):
        add(m.start(), m.end(), "what year")
    for m in _NUMBER.finditer(sentence):
        money, percent = m.group(1), m.group(2)
        add(m.start(), m.end(), "how much" if money or percent else "how many")
    for m in _CAPS.finditer(sentence):
        a, b = m.start(), m.end()
        words = m.group(0).split()
        while words and words[0] in _STOP_CAPS:  # "The Amazon Kindle" -> "Amazon Kindle"
            a += len(words[0]) + 1
            words = words[1:]
        while words and words[-1] in ("of", "de", "the", "and"):
            b -= len(words[-1]) + 1
            words = words[:-1]
        if not words or a == 0:
            continue  # nothing left, or the sentence's first word: capitalised for grammar only
        head = sentence[:a]
        person = bool(_PERSON_BEFORE.search(head) or _AGENT_BEFORE.search(head) or _PERSON_AFTER.search(sentence[b:]))
        add(a, b, "who" if person else "where" if _PLACE_BEFORE.search(head) else "what")
    for m in _NOUN_PHRASE.finditer(sentence):
        add(m.start(), m.end(), "what")
    return found


def make_question(sentence: str, start: int, end: int, wh: str) -> str:
    """The sentence with ``sentence[start:end]`` replaced by ``wh``, ending with a question mark."""
    before, after = sentence[:start].rstrip(), sentence[end:].lstrip()
    if wh == "where":  # "born in Warsaw" -> "born where", not "born in where"
        before = _PLACE_BEFORE.sub("", sentence[:start]).rstrip()
    after = re.sub(r"[.!?]+$", "", after).rstrip()
    if not before:
        wh = wh[0].upper() + wh[1:]
    question = " ".join(p for p in (before, wh, after) if p)
    question = re.sub(r"\s+([,;:])", r"\1", question).rstrip(" ,;:")
    return question + "?"


def synthesize(passages: Sequence[str], per_passage: int = 4, seed: int = 0,
               id_prefix: str = "syn") -> list[QAExample]:
    """Cloze-style question-answer pairs from ``passages``; every answer is ``passage[answer_start:][:len(text)]``."""
    rng = random.Random(seed)
    out: list[QAExample] = []
    for p, passage in enumerate(passages):
        options: list[tuple[str, int, str, str]] = []  # (kind, answer start in passage, answer, question)
        for offset, sent in sentences(passage):
            n_words = len(sent.split())
            if not 6 <= n_words <= 60:
                continue
            for a, b, wh in _candidates(sent):
                answer = sent[a:b]
                if len(answer.split()) > 8 or len(answer.split()) >= n_words - 3:
                    continue  # the question must keep most of the sentence as its clue
                options.append((wh, offset + a, answer, make_question(sent, a, b, wh)))
        rng.shuffle(options)
        chosen: list[tuple[str, int, str, str]] = []
        kinds: dict[str, int] = {}
        for opt in sorted(options, key=lambda o: kinds.get(o[0], 0)):  # spread over kinds, then anything left
            if len(chosen) >= per_passage:
                break
            if any(c[1] == opt[1] for c in chosen):
                continue
            chosen.append(opt)
            kinds[opt[0]] = kinds.get(opt[0], 0) + 1
        for q, (_, start, answer, question) in enumerate(chosen):
            out.append(QAExample(f"{id_prefix}:{p}:{q}", question, passage,
                                 [{"text": answer, "answer_start": start}], title="synthesised"))
    return out
