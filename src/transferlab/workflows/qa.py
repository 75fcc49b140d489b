"""Question answering as verbs: train a reader, evaluate it, ask it, adapt it to a new domain without labels.

A reader is a saved model like any other (``config.json`` with ``task: "qa"`` and ``weights.kind: "qa_reader"``,
``model.safetensors``, the tokenizer in ``transformer/``, ``metrics.json``, ``data_report.json``), written
atomically, loaded by the saved-model loaders without training code.

Transfer to a new domain:

- with a few labelled questions: :func:`train_reader` with ``init`` (a trained reader) starts from that reader;
  unless given, the learning rates are then lowered (:data:`INIT_DEFAULTS`): the head is already trained and a
  large rate would first undo what it knows;
- with none: :func:`adapt_reader` synthesises cloze-style questions from the domain's passages
  (:mod:`transferlab.data.qa_synthesis`) and fine-tunes the reader on them, one epoch at the lowered rates. Cloze
  questions are not natural questions, so too much of them teaches the reader to match sentences: ``replay_count``
  real questions are mixed in to keep the question style (experience replay). They come from the reader folder
  itself: every reader keeps a seeded sample of up to :data:`REPLAY_KEEP` of the questions it was trained on in
  ``replay.json`` (SQuAD format; an adapted reader keeps the questions it replayed), so ``qa adapt`` needs the
  reader folder alone; ``replay`` names another SQuAD file instead, ``replay_count=0`` turns replay off. Without
  replay the adapted reader lost ~1.5 F1 on squadshifts_reddit and _amazon; with it, it gains 0.8 and 0.4
  (benchmarks/qa.py).
  Round-trip consistency (Alberti et al., 2019, "Synthetic QA Corpora Generation with Roundtrip Consistency"): a
  synthesised question is kept only when the reader, asked it, already answers with the synthesised answer (exact
  match after SQuAD normalisation). Rule-based questions from informal text are often unanswerable or ambiguous;
  the filter drops those, so adaptation sharpens what the reader gets right on the domain's own text instead of
  teaching it noise (without it, adapting lost 9 F1 on squadshifts_amazon). ``roundtrip=False`` keeps them all.
  Weight averaging (WiSE-FT, Wortsman et al. 2022): the adapted reader's weights are averaged with the starting
  reader's (``init_weight=0.5``): a stronger reader (mpnet) passes more cloze questions through the filter and
  drifts towards matching sentences (adapting alone lost 3.8 F1 on the squadshifts_amazon train.json questions,
  the average gained 0.7; benchmarks/qa_wise.py, its rule fixed before the run). ``--param init_weight=0`` keeps
  the adapted weights alone.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.data.report import DataReport
from transferlab.data.squad import QAExample, read_passages, read_squad
from transferlab.errors import UserError
from transferlab.progress import log, progress_bar

# fine-tuning a trained reader (--init, adapt): 5e-5 (of 5e-5, 1e-4, 2e-4) and 3 epochs (of 2, 3, or 2 with 500
# replayed SQuAD questions) chosen by rules fixed before their runs, on halves of the squadshifts train.json files
# (benchmarks/qa_init_rate.py; mean F1 gain over the reader as is: 2 epochs +3.34, 3 epochs +4.07, replay +3.79)
INIT_DEFAULTS = {"lr": 5e-5, "head_lr": 5e-5, "epochs": 3, "body_dropout": None}
ADAPT_DEFAULTS = {**INIT_DEFAULTS, "epochs": 1, "init_weight": 0.5}
REPLAY_FILE = "replay.json"  # in a reader folder: real questions it was trained on, for `qa adapt` to replay
REPLAY_KEEP = 500


@dataclass
class QAResult:
    metrics: dict[str, Any]
    report: DataReport
    out: Path | None
    reader: Any


def checkpoint_dir_for(out: str | os.PathLike[str]) -> Path:
    """Per-epoch checkpoints live beside the model folder (which is replaced atomically at the end)."""
    target = Path(out).resolve()
    return target.parent / f".{target.name}.checkpoint"


def load_reader(directory: str | os.PathLike[str]) -> Any:  # noqa: ANN401
    """The answering predictor of a saved reader (:class:`~transferlab.model.qa_loaders.QAPredictor`)."""
    from transferlab.model import load_model

    model = load_model(directory)
    if model.config.get("task") != "qa":
        raise UserError(f"{directory}: a {model.config.get('task', 'image')} model, not a question-answering reader; "
                        "train one with `transferlab qa train`")
    return model.predictor


def _reader_params(init: str | None, params: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    from transferlab.strategies.base import check_param_values
    from transferlab.strategies.qa_reader import QAReader

    out = dict(defaults) if init else {}
    out.update(params or {})
    if init:
        from transferlab.model.qa_loaders import saved_reader_weights

        weights = saved_reader_weights(Path(init))
        for key in ("max_length", "stride", "max_answer_tokens"):  # keep the windows the reader was trained on
            if key in weights:
                out.setdefault(key, weights[key])
    valid = set(QAReader().get_params())
    unknown = sorted(set(out) - valid)
    if unknown:
        raise UserError(f"qa_reader has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(sorted(valid))}")
    check_param_values(QAReader, out)
    return out


def _fit_and_save(reader: Any, examples: list[QAExample], report: DataReport, out: str | os.PathLike[str] | None,  # noqa: ANN401
                  extra_metrics: dict[str, Any], eval_data: str | os.PathLike[str] | None,
                  replay_sample: list[QAExample]) -> QAResult:
    from transferlab.data.squad import write_squad
    from transferlab.model import Model, library_versions

    t0 = time.perf_counter()
    reader.fit(examples)
    metrics: dict[str, Any] = {"train_seconds": time.perf_counter() - t0, "train_questions": len(examples),
                               **reader.train_windows_, "recipe": reader.recipe_, **extra_metrics}
    evaluation = None
    if eval_data is not None:
        evaluation = evaluate_reader(reader, eval_data)
        metrics.update({k: evaluation[k] for k in ("exact_match", "f1", "count", "questions_per_second")})
        metrics["eval_data"] = str(eval_data)
    saved = None
    if out is not None:
        config = {"format_version": 1, "task": "qa", "strategy": {"name": reader.name, "params": reader.get_params()},
                  "preprocessing": {"max_length": reader.max_length, "stride": reader.stride},
                  "versions": library_versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if replay_sample:
            config["replay"] = {"file": REPLAY_FILE, "questions": len(replay_sample)}
        model = Model(config, [], None, metrics)

        def write_weights(directory: Path) -> None:
            config["weights"] = reader.save_weights(directory)

        def extra_files(directory: Path) -> None:
            report.save(directory / "data_report.json")
            if replay_sample:
                write_squad(replay_sample, directory / REPLAY_FILE)
            if evaluation is not None:
                write_evaluation(evaluation, directory)

        saved = model.save(out, write_weights, extra_files)
        if reader.checkpoint_dir:
            import shutil

            shutil.rmtree(reader.checkpoint_dir, ignore_errors=True)
    return QAResult(metrics, report, saved, reader)


def train_reader(data: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, init: str | None = None,
                 params: dict[str, Any] | None = None, seed: int = 0, resume: bool = False,
                 eval_data: str | os.PathLike[str] | None = None, limit: int | None = None) -> QAResult:
    """Train a reader on a SQuAD file (from ``init``, a saved reader, when given) and save it to ``out``;
    ``eval_data`` is evaluated afterwards (metrics.json, predictions.json, mistakes.json); ``limit`` keeps the first
    N questions of a seeded shuffle (learning curves)."""
    if resume and out is None:
        raise UserError("--resume needs --out (checkpoints are kept next to the model folder)")
    examples, report = read_squad(data)  # a bad file fails before torch and the body are loaded
    from transferlab.strategies.qa_reader import QAReader

    for line in report.summary_lines(5):
        log(line)
    if limit is not None and limit < len(examples):
        examples = random.Random(seed).sample(examples, limit)
        report.notes.append(f"kept {limit} questions (seeded sample, seed {seed})")
    reader = QAReader(**_reader_params(init, params, INIT_DEFAULTS), init=init, seed=seed,
                      checkpoint_dir=str(checkpoint_dir_for(out)) if out is not None else None, resume=resume)
    keep = random.Random(seed).sample(examples, min(REPLAY_KEEP, len(examples)))
    return _fit_and_save(reader, examples, report, out, {"init": init}, eval_data, keep)


def adapt_reader(directory: str | os.PathLike[str], unlabelled: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None, per_passage: int = 4,
                 replay: str | os.PathLike[str] | None = None, replay_count: int = REPLAY_KEEP,
                 params: dict[str, Any] | None = None, seed: int = 0,
                 resume: bool = False, eval_data: str | os.PathLike[str] | None = None,
                 roundtrip: bool = True) -> QAResult:
    """Adapt a saved reader to the domain of ``unlabelled`` passages (a .txt of paragraphs, or a SQuAD file whose
    questions are ignored) with synthesised questions (only the round-trip consistent ones unless ``roundtrip`` is
    False), plus ``replay_count`` real questions: those the reader folder keeps (``replay.json``), or those of the
    SQuAD file ``replay``; none when ``replay_count`` is 0 or the folder keeps none."""
    from transferlab.data.qa_synthesis import synthesize
    from transferlab.strategies.qa_reader import QAReader

    base = load_reader(directory)  # a clear error now, not after synthesis, when it is not a reader
    passages = read_passages(unlabelled)
    examples = synthesize(passages, per_passage=per_passage, seed=seed)
    if not examples:
        raise UserError(f"{unlabelled}: no question could be synthesised (passages need full sentences)")
    report = DataReport(source=str(unlabelled))
    report.notes.append(f"{len(passages)} passages, {len(examples)} synthesised questions ({per_passage} at most "
                        "per passage)")
    log(report.notes[-1])
    synthesised = len(examples)
    if roundtrip:
        examples = roundtrip_consistent(base, examples)
        report.notes.append(f"round-trip filter: the reader already answers {len(examples)} of the {synthesised} "
                            "synthesised questions with their synthesised answer; only those are kept")
        log(report.notes[-1])
        if not examples:
            raise UserError(f"{unlabelled}: the reader answered none of the {synthesised} synthesised questions "
                            "consistently; nothing to adapt on (try --no-roundtrip, or label a few questions)")
    report.set_counts("synthesised", ["synthesised"] * len(examples))
    chosen: list[QAExample] = []
    source = Path(replay) if replay is not None else Path(directory) / REPLAY_FILE
    if replay_count > 0 and (replay is not None or source.exists()):
        real, _ = read_squad(source)
        chosen = real if len(real) <= replay_count else random.Random(seed).sample(real, replay_count)
        examples = examples + chosen
        report.set_counts("replay", ["replay"] * len(chosen))
        report.notes.append(f"replayed {len(chosen)} real questions from {source}")
        log(report.notes[-1])
    elif replay_count > 0:
        report.notes.append(f"{directory} keeps no {REPLAY_FILE} (a reader saved before it did): adapting without "
                            "replay; --replay DATA names the reader's training file")
        log(report.notes[-1])
    n_replay = len(chosen)
    reader = QAReader(**_reader_params(str(directory), params, ADAPT_DEFAULTS), init=str(directory), seed=seed,
                      checkpoint_dir=str(checkpoint_dir_for(out)) if out is not None else None, resume=resume)
    return _fit_and_save(reader, examples, report, out,
                         {"init": str(directory), "synthesised_questions": synthesised,
                          "kept_questions": len(examples) - n_replay, "roundtrip": bool(roundtrip),
                          "replay_questions": n_replay, "passages": len(passages)}, eval_data, chosen)


def roundtrip_consistent(reader: Any, examples: list[QAExample], batch_size: int = 32  # noqa: ANN401
                         ) -> list[QAExample]:
    """The synthesised examples whose question ``reader`` answers with the synthesised answer (normalised exact
    match): round-trip consistency."""
    from transferlab.evaluation_qa import exact_match_score

    bar = progress_bar(total=None, desc="round-trip check", unit="window")
    answers = reader.answer([e.question for e in examples], [e.context for e in examples], batch_size=batch_size,
                            progress=bar.update)
    bar.close()
    return [e for e, a in zip(examples, answers, strict=True)
            if exact_match_score(a["answer"], e.answers[0]["text"])]


def evaluate_reader(reader: Any, data: str | os.PathLike[str], batch_size: int = 32  # noqa: ANN401
                    ) -> dict[str, Any]:
    """Official SQuAD v1.1 EM and F1 (percent) of a reader (a folder, a loaded predictor or a fitted QAReader) on a
    SQuAD file, with per-question results, the worst mistakes and the answering speed."""
    from transferlab.evaluation_qa import squad_metrics, worst_mistakes

    if isinstance(reader, str | os.PathLike):
        reader = load_reader(reader)
    examples, report = read_squad(data, require_answers=False)
    bar = progress_bar(total=None, desc="answering", unit="window")
    t0 = time.perf_counter()
    kwargs = {"batch_size": batch_size, "progress": bar.update} if hasattr(reader, "weights") else {}
    answers = reader.answer([e.question for e in examples], [e.context for e in examples], **kwargs)
    seconds = time.perf_counter() - t0
    bar.close()
    metrics = squad_metrics(examples, {e.id: a["answer"] for e, a in zip(examples, answers, strict=True)})
    conf = {e.id: a["score"] for e, a in zip(examples, answers, strict=True)}
    for row, a in zip(metrics["per_question"], answers, strict=True):
        row["score"], row["start"] = a["score"], a["start"]
    metrics["worst_mistakes"] = worst_mistakes(metrics["per_question"], 20, conf)
    metrics["questions_per_second"] = len(examples) / max(seconds, 1e-9)
    metrics["answer_seconds"] = seconds
    metrics["skipped"] = report.skipped
    return metrics


def write_evaluation(evaluation: dict[str, Any], directory: Path) -> None:
    """predictions.json (id -> answer, the official script's input), per_question.json and mistakes.json."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = evaluation["per_question"]
    (directory / "predictions.json").write_text(json.dumps({r["id"]: r["prediction"] for r in rows}, indent=1))
    (directory / "per_question.json").write_text(json.dumps(rows, indent=1))
    (directory / "mistakes.json").write_text(json.dumps(evaluation["worst_mistakes"], indent=1))


def ask(directory: str | os.PathLike[str], context: str, questions: list[str]) -> list[dict[str, Any]]:
    """Answer ``questions`` about one passage (in one batch): ``question``, ``answer``, ``score``, ``start``."""
    if not context.strip():
        raise UserError("the context is empty")
    questions = [q.strip() for q in questions if q.strip()]
    if not questions:
        raise UserError("no question given")
    reader = load_reader(directory)
    answers = reader.answer(questions, [context] * len(questions))
    return [{"question": q, "answer": a["answer"], "score": a["score"], "start": a["start"]}
            for q, a in zip(questions, answers, strict=True)]
