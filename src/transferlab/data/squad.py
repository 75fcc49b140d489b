"""SQuAD v1.1 / v2.0 JSON as a flat list of questions, validated; and unlabelled passages for ``qa adapt``.

A SQuAD file is ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible"?}]}]}]}``. Reading it checks every question and answer:

- an ``answer_start`` whose text is not at that offset is **realigned** to the occurrence of the text closest to
  the given offset (exact first, then ignoring case), because hand-made and converted files often count offsets in
  bytes or after a whitespace clean-up; the number realigned is a note in the report;
- an answer whose text is nowhere in the context is dropped, and a question left with no usable answer (and not
  marked impossible, as SQuAD 2.0 does) is **skipped and reported** with its id and the reason;
- a file that is not JSON, has no ``data`` list, or has no usable question at all is a :class:`DataError` naming the
  file and the problem (the CLI prints one line and exits 2); records with missing keys or empty contexts are
  skipped and reported when the rest of the file is usable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.data.report import DataReport
from transferlab.errors import DataError


@dataclass
class QAExample:
    """One question about one passage; ``answers`` are ``{"text", "answer_start"}`` with offsets into ``context``
    that match (after validation); empty when ``is_impossible`` (SQuAD 2.0) or for unlabelled questions."""

    id: str
    question: str
    context: str
    answers: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    is_impossible: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "context": self.context, "question": self.question,
                "answers": self.answers, "is_impossible": self.is_impossible}


def _occurrences(context: str, text: str, ignore_case: bool) -> list[int]:
    hay, needle = (context.lower(), text.lower()) if ignore_case else (context, text)
    out, i = [], hay.find(needle)
    while i >= 0:
        out.append(i)
        i = hay.find(needle, i + 1)
    return out


def align_answer(context: str, text: str, start: int | None) -> int | None:
    """The offset of ``text`` in ``context``: ``start`` when it matches, else the occurrence closest to ``start``
    (exact match first, then case-insensitive), else None when the text is not in the context at all."""
    if not text:
        return None
    if start is not None and 0 <= start and context[start : start + len(text)] == text:
        return start
    for ignore_case in (False, True):
        found = _occurrences(context, text, ignore_case)
        if found:
            return min(found, key=lambda i: abs(i - (start if start is not None else 0)))
    return None


def _load_json(path: Path) -> Any:  # noqa: ANN401 - any JSON document
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a SQuAD JSON file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def read_squad(path: str | os.PathLike[str], require_answers: bool = True) -> tuple[list[QAExample], DataReport]:
    """The questions of a SQuAD v1.1 or v2.0 file and the data report (what was skipped, what was realigned).

    ``require_answers=False`` keeps questions without answers (a file of questions to answer, not to train on)."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: not a SQuAD file (expected an object with a \"data\" list of articles)")
    report = DataReport(source=str(path))
    examples: list[QAExample] = []
    realigned = 0
    seen_ids: set[str] = set()
    for a, article in enumerate(doc["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            report.skip(f"{path}#data[{a}]", "article without a \"paragraphs\" list")
            continue
        title = str(article.get("title", ""))
        for p, para in enumerate(article["paragraphs"]):
            where = f"{path}#data[{a}].paragraphs[{p}]"
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                report.skip(where, "paragraph without a \"qas\" list")
                continue
            context = para.get("context")
            if not isinstance(context, str) or not context.strip():
                report.skip(where, f"empty or missing context ({len(para['qas'])} question(s) skipped)")
                continue
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or not qa["question"].strip():
                    report.skip(f"{where}.qas[{q}]", "question without a \"question\" text")
                    continue
                qid = str(qa.get("id", f"{a}:{p}:{q}"))
                if qid in seen_ids:
                    qid = f"{qid}#{a}:{p}:{q}"
                impossible = bool(qa.get("is_impossible", False))
                answers, dropped = [], []
                raw = qa.get("answers", [])
                if not isinstance(raw, list):
                    report.skip(qid, "\"answers\" is not a list")
                    continue
                for ans in [] if impossible else raw:
                    text = ans.get("text") if isinstance(ans, dict) else None
                    start = ans.get("answer_start") if isinstance(ans, dict) else None
                    if not isinstance(text, str) or not text.strip():
                        dropped.append("an answer without text")
                        continue
                    at = align_answer(context, text, start if isinstance(start, int) else None)
                    if at is None:
                        dropped.append(f"answer {text[:40]!r} is not in the context")
                        continue
                    realigned += at != start
                    answers.append({"text": text, "answer_start": at})
                if not answers and not impossible and (require_answers or raw):
                    report.skip(qid, "; ".join(dropped) if dropped else "no answers")
                    continue
                seen_ids.add(qid)
                examples.append(QAExample(qid, qa["question"].strip(), context, answers, title, impossible))
    if not examples:
        why = f"; e.g. {report.skipped[0]['path']}: {report.skipped[0]['reason']}" if report.skipped else ""
        raise DataError(f"{path}: no usable questions{why}")
    report.set_counts("questions", ["unanswerable" if e.is_impossible else "answerable" for e in examples])
    if realigned:
        report.notes.append(f"{realigned} answer_start offset(s) did not match their text and were realigned to the "
                            "nearest occurrence of the text")
    return examples, report


def write_squad(examples: Sequence[QAExample], path: str | os.PathLike[str]) -> None:
    """Write ``examples`` as a SQuAD v2.0-compatible file (v1.1 readers read it too): one article per title, one
    paragraph per distinct context, in first-seen order; :func:`read_squad` reads back the same examples."""
    articles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for e in examples:
        paragraphs = articles.setdefault(e.title, {})
        paragraphs.setdefault(e.context, []).append(
            {"id": e.id, "question": e.question, "answers": list(e.answers), "is_impossible": bool(e.is_impossible)})
    doc = {"version": "v2.0", "data": [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()]}
    Path(path).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def read_passages(path: str | os.PathLike[str], min_chars: int = 40) -> list[str]:
    """Unlabelled passages for ``qa adapt``: a ``.txt`` file of paragraphs separated by blank lines, or a SQuAD
    JSON file whose contexts are used and whose questions are ignored. Each distinct passage once, in order;
    shorter ones than ``min_chars`` (headings, stray lines) are left out."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        doc = _load_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise DataError(f"{path}: not a SQuAD file (expected an object with a \"data\" list of articles)")
        raw = [para.get("context", "") for article in doc["data"] if isinstance(article, dict)
               for para in article.get("paragraphs", []) if isinstance(para, dict)]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise DataError(f"{path}: is a folder; give a .txt file of paragraphs or a SQuAD JSON file") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
        raw = [" ".join(block.split()) for block in text.replace("\r\n", "\n").split("\n\n")]
    seen: set[str] = set()
    passages = []
    for p in raw:
        p = p.strip() if isinstance(p, str) else ""
        if len(p) >= min_chars and p not in seen:
            seen.add(p)
            passages.append(p)
    if not passages:
        raise DataError(f"{path}: no passages of at least {min_chars} characters")
    return passages
