"""``transferlab compare`` on question-answering data: ways of getting a reader for the user's domain, side by side.

DATA is a SQuAD v1.1/v2.0 file of the user's own labelled questions, or a folder holding ``train.json`` and
``test.json`` (the SQuADShifts layout). A file is split by *passage* (``val_fraction`` of the questions, whole
passages, seeded): questions about one passage never sit on both sides, or the test would reward memorised passages.

The candidates (:data:`STRATEGIES`); all but ``scratch`` need a trained reader (``init``, e.g. one from
``transferlab qa train squad.json``):

- ``as_is``: the reader as it is, on the test questions (zero-shot transfer to the domain);
- ``labels``: that reader fine-tuned on the training questions (``qa train --init``);
- ``no_labels``: that reader adapted to the training passages with their questions removed (``qa adapt``:
  synthesised questions, round-trip filter, replay of the reader's own questions): what unlabelled text alone buys;
- ``scratch``: a reader trained on the training questions alone, from the pretrained encoder (no QA transfer).

Every candidate is scored with the official SQuAD v1.1 exact match and F1 on the same test questions and ranked by
F1; the notes say whether the first's lead over each other candidate exceeds twice its standard error (paired over
the test questions), since a few hundred questions cannot tell a 2-point difference from noise.
``OUT/`` gets ``leaderboard.{json,csv,md}``, ``report.html`` (bars of F1 and EM), the split it used
(``split/train.json``, ``split/test.json``), each trained reader under ``runs/`` and a copy of the winner in ``best/``.
A finished candidate is not run again when its split, reader and seed are unchanged (``runs/NAME/compare_run.json``),
so an interrupted compare resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.data.squad import QAExample, read_squad, write_squad
from transferlab.errors import UserError
from transferlab.progress import log

STRATEGIES: dict[str, str] = {
    "as_is": "the trained reader as it is (zero-shot transfer)",
    "labels": "the trained reader fine-tuned on the labelled training questions (qa train --init)",
    "no_labels": "the trained reader adapted to the training passages, questions removed (qa adapt)",
    "scratch": "a reader trained on the training questions alone, from the pretrained encoder",
}
NEEDS_READER = ("as_is", "labels", "no_labels")
COLUMNS = ("rank", "strategy", "exact_match", "f1", "count", "train_questions", "train_seconds", "description")


def looks_like_squad(data: str | os.PathLike[str]) -> bool:
    """A ``.json`` file whose top level holds a ``"data"`` list, or a folder with a ``train.json`` that does."""
    path = Path(data)
    if path.is_dir():
        path = path / "train.json"
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(4096)
    return b'"data"' in head or b'"version"' in head


@dataclass
class QACompareResult:
    rows: list[dict[str, Any]]
    protocol: str
    winner: str | None = None
    seconds: float = 0.0
    cached_runs: int = 0
    notes: list[str] = field(default_factory=list)


def split_by_passage(examples: Sequence[QAExample], fraction: float, seed: int
                     ) -> tuple[list[QAExample], list[QAExample]]:
    """(train, test): whole passages, shuffled with ``seed``, go to the test side until it holds ``fraction`` of
    the questions (at least one passage, and at least one left for training)."""
    passages: dict[str, list[QAExample]] = {}
    for e in examples:
        passages.setdefault(e.context, []).append(e)
    if len(passages) < 2:
        raise UserError("compare needs questions about at least 2 passages (one to train on, one to test on)")
    order = list(passages)
    random.Random(seed).shuffle(order)
    test: list[QAExample] = []
    target = fraction * len(examples)
    for i, context in enumerate(order[:-1]):
        if i > 0 and len(test) >= target:
            break
        test.extend(passages[context])
    chosen = {e.id for e in test}
    return [e for e in examples if e.id not in chosen], test


def _digest(*parts: Any) -> str:  # noqa: ANN401
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _resolve(data: Path, val_fraction: float, seed: int, split_dir: Path) -> tuple[Path, Path, str]:
    """(train file, test file, protocol) for DATA, writing the split of a single file into ``split_dir``."""
    if data.is_dir():
        train, test = data / "train.json", data / "test.json"
        if not train.is_file() or not test.is_file():
            raise UserError(f"{data}: a question-answering folder needs train.json and test.json")
        read_squad(train)  # a bad file is a clear error before any training
        read_squad(test)
        return train, test, f"{train.name} -> {test.name} of {data}"
    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    examples, report = read_squad(data)
    for line in report.summary_lines(5):
        log(line)
    train_ex, test_ex = split_by_passage(examples, val_fraction, seed)
    split_dir.mkdir(parents=True, exist_ok=True)
    write_squad(train_ex, split_dir / "train.json")
    write_squad(test_ex, split_dir / "test.json")
    protocol = (f"{len(train_ex)} training / {len(test_ex)} test questions of {data.name}, split by passage "
                f"(val_fraction {val_fraction}, seed {seed})")
    return split_dir / "train.json", split_dir / "test.json", protocol


def _reader_stamp(init: str | None) -> Any:  # noqa: ANN401
    if init is None:
        return None
    config = Path(init) / "config.json"
    if not config.is_file():
        raise UserError(f"{init}: not a transferlab model folder (no config.json); give a reader from "
                        "`transferlab qa train`")
    return [str(Path(init).resolve()), config.read_bytes()]


def _run_one(name: str, init: str | None, train: Path, test: Path, target: Path, seed: int,
             params: dict[str, Any] | None) -> dict[str, Any]:
    from transferlab.workflows.qa import adapt_reader, evaluate_reader, train_reader

    t0 = time.perf_counter()
    row: dict[str, Any] = {"strategy": name, "description": STRATEGIES[name], "train_seconds": 0.0,
                           "train_questions": 0}
    if name == "as_is":
        reader: Any = init
    else:
        result = (adapt_reader(str(init), train, out=target, params=params, seed=seed) if name == "no_labels" else
                  train_reader(train, out=target, init=init if name == "labels" else None, params=params, seed=seed))
        reader, row["train_questions"] = result.out, result.metrics["train_questions"]
    if name != "as_is":
        row["train_seconds"] = round(time.perf_counter() - t0, 1)
    evaluation = evaluate_reader(reader, test)
    row.update({k: round(float(evaluation[k]), 2) for k in ("exact_match", "f1")})
    row["count"] = int(evaluation["count"])
    row["per_question_f1"] = [float(q["f1"]) for q in evaluation["per_question"]]  # same test order for all
    row["model"] = str(init if name == "as_is" else target)
    return row


def compare_qa(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, init: str | None = None,
               strategies: list[str] | None = None, seed: int = 0, val_fraction: float = 0.2,
               params: dict[str, Any] | None = None) -> QACompareResult:
    """Run the candidates on DATA (see the module) and rank them by F1 on the test questions."""
    t_start = time.perf_counter()
    names = list(strategies) if strategies else (list(STRATEGIES) if init else ["scratch"])
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise UserError(f"unknown question-answering strategy {', '.join(unknown)}; choose from "
                        f"{', '.join(STRATEGIES)}")
    if init is None and any(n in NEEDS_READER for n in names):
        raise UserError(f"{', '.join(n for n in names if n in NEEDS_READER)} transfer a trained reader: give one "
                        "with --init READER (from `transferlab qa train squad.json --out READER`)")
    if init is not None:
        from transferlab.workflows.qa import load_reader

        load_reader(init)  # not a reader: a clear error before any work
    notes = [] if init else ["no --init reader: only `scratch` runs; give --init READER to compare transfer"]
    for n in notes:
        log(n)
    work = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="transferlab-compare-qa-"))
    work.mkdir(parents=True, exist_ok=True)
    train, test, protocol = _resolve(Path(data), val_fraction, seed, work / "split")
    log(f"compare: {len(names)} question-answering candidates; {protocol}")
    key_base = [train.read_bytes(), test.read_bytes(), _reader_stamp(init), seed, params or {}]
    rows, cached = [], 0
    for name in names:
        target = work / "runs" / name
        stamp = target / "compare_run.json"
        key = _digest(*key_base, name)
        if stamp.is_file():
            saved = json.loads(stamp.read_text())
            if saved.get("key") == key:
                rows.append(saved["row"])
                cached += 1
                log(f"compare: {name} already ran on this split (from {stamp})")
                continue
        log(f"compare: {name}: {STRATEGIES[name]}")
        try:
            row = _run_one(name, init, train, test, target, seed, params)
        except UserError as exc:  # e.g. no synthesised question survived: the other candidates still count
            notes.append(f"{name} did not run: {exc}")
            log(notes[-1])
            continue
        target.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"key": key, "row": row}, indent=2))
        rows.append(row)
    if not rows:
        raise UserError("no candidate ran: " + "; ".join(notes))
    rows.sort(key=lambda r: (-r["f1"], -r["exact_match"], r["train_seconds"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    noise = noise_notes(rows)
    for n in noise:
        log(n)
    rows = [{k: v for k, v in r.items() if k != "per_question_f1"} for r in rows]
    result = QACompareResult(rows, protocol, cached_runs=cached, notes=notes + noise)
    if out is not None:
        best = work / "best"
        if best.exists():
            shutil.rmtree(best)
        shutil.copytree(rows[0]["model"], best, ignore=shutil.ignore_patterns("compare_run.json"))
        result.winner = rows[0]["strategy"]
        write_qa_leaderboard(work, rows)
        write_qa_report(work / "report.html", rows, protocol, result.notes)
    else:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.perf_counter() - t_start
    return result


def noise_notes(rows: list[dict[str, Any]]) -> list[str]:
    """How sure the ranking is: for each candidate below the first, the first's F1 lead and twice its standard
    error over the paired per-question differences (the same test questions): a lead inside that margin is noise."""
    import numpy as np

    out = []
    first = rows[0].get("per_question_f1")
    for r in rows[1:]:
        other = r.get("per_question_f1")
        if not first or not other or len(first) != len(other) or len(first) < 2:
            continue
        d = 100.0 * (np.asarray(first) - np.asarray(other))
        margin = 2 * float(d.std(ddof=1)) / np.sqrt(len(d))
        lead = float(d.mean())
        verdict = "a real difference" if lead > margin else "within noise: no real difference"
        out.append(f"{rows[0]['strategy']} leads {r['strategy']} by {lead:.1f} F1 (+/- {margin:.1f}, 2 standard "
                   f"errors over the {len(d)} test questions): {verdict}")
    return out


def write_qa_leaderboard(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    public = [{c: r.get(c) for c in COLUMNS} for r in rows]
    (out_dir / "leaderboard.json").write_text(json.dumps(public, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(public)
    (out_dir / "leaderboard.csv").write_text(buf.getvalue())
    (out_dir / "leaderboard.md").write_text(qa_table(rows) + "\n")


def qa_table(rows: list[dict[str, Any]]) -> str:
    """The leaderboard as a Markdown table (also what the terminal shows)."""
    lines = ["| # | strategy | F1 | EM | test Q | train Q | train s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['rank']} | {r['strategy']} | {r['f1']:.1f} | {r['exact_match']:.1f} | {r['count']} | "
                     f"{r['train_questions']} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def write_qa_report(path: Path, rows: list[dict[str, Any]], protocol: str, notes: Sequence[str]) -> None:
    """A self-contained page: F1 and EM as bars per candidate, then the table with what each candidate is."""
    bars = []
    for r in rows:
        bars.append(
            f"<tr><td>{html.escape(r['strategy'])}</td><td class=bar><div class=f1 style='width:{r['f1']:.1f}%'>"
            f"F1 {r['f1']:.1f}</div><div class=em style='width:{r['exact_match']:.1f}%'>EM {r['exact_match']:.1f}"
            f"</div></td><td>{html.escape(r['description'])}</td><td>{r['train_questions']}</td>"
            f"<td>{r['train_seconds']:.0f}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>transferlab compare: question answering</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#111}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #e5e7eb;padding:6px 10px;text-align:left;vertical-align:top}}
td.bar{{width:45%}} .f1,.em{{color:#fff;font-size:12px;padding:2px 6px;margin:2px 0;white-space:nowrap}}
.f1{{background:#2563eb}} .em{{background:#93c5fd;color:#111}}</style></head><body>
<h1>Question answering: which reader for this domain</h1>
<p>{html.escape(protocol)}. Official SQuAD v1.1 exact match (EM) and F1, in percent, on the same test questions;
ranked by F1. The winner is in <code>best/</code>.</p>
{''.join(f'<p><b>Note:</b> {html.escape(n)}</p>' for n in notes)}
<table><tr><th>candidate</th><th>F1 / EM</th><th>what it is</th><th>train Q</th><th>train s</th></tr>
{''.join(bars)}</table></body></html>"""
    path.write_text(page, encoding="utf-8")
