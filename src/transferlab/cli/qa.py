"""``transferlab qa``: extractive question answering: train a reader on SQuAD-style data, adapt it to a new domain
(with a few labelled questions through ``train --init``, or none through ``adapt``), evaluate it, ask it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from transferlab.cli._common import print_json, seed_int
from transferlab.errors import UserError

HELP = "question answering: train, adapt, evaluate and ask an extractive reader (SQuAD JSON)"


def _param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a reader parameter: max_length, stride, max_answer_tokens, epochs, lr, head_lr, batch_size, "
                   "negative_fraction, backbone, ... (repeatable)")
    p.add_argument("--backbone", default=None, help="transformer text encoder to start from (default: minilm, which "
                   "answers >= 50 questions/s on two cores; mpnet is slower and more accurate; or a `pretrain-text "
                   "--method mlm` folder); ignored with --init")
    p.add_argument("--epochs", type=int, default=None, help="passes over the questions (default: 3 for minilm, 2 when "
                   "it is distilled from a teacher trained in the run, 1 for mpnet; 3 with --init, 1 for adapt)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed: the same seed gives the same numbers")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last complete epoch")
    p.add_argument("--eval", dest="eval_data", default=None, metavar="DATA",
                   help="a SQuAD file to evaluate on after training (EM/F1 into metrics.json)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("qa", help=HELP, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="""Examples:
  transferlab qa train squad.json --out reader/
  transferlab qa evaluate reader/ test.json --json
  transferlab qa ask reader/ --context passage.txt --question "Who wrote it?" --question "When?"
  transferlab qa train in_domain.json --init reader/ --out reader_domain/
  transferlab qa adapt reader/ unlabelled.txt --out reader_domain/
  transferlab qa train squad.json --backbone mpnet --out reader_mpnet/   # slower to answer, more accurate
  transferlab qa train squad.json --teacher reader_mpnet/ --out reader_fast/   # distil a reader you trained
""")
    sub = p.add_subparsers(dest="qa_command", metavar="SUBCOMMAND", required=True, parser_class=type(p))
    t = sub.add_parser("train", help="train a reader on a SQuAD v1.1/v2.0 file")
    t.add_argument("data", metavar="DATA")
    t.add_argument("--init", default=None, metavar="DIR",
                   help="start from a trained reader (domain adaptation with labelled questions; lower rates)")
    t.add_argument("--out", required=True, help="folder to save the reader into")
    t.add_argument("--limit", type=int, default=None, help="train on N questions of a seeded sample")
    t.add_argument("--teacher", default=None, metavar="DIR|ENCODER|none",
                   help="distil a stronger reader into this one (knowledge distillation): a trained reader folder, "
                        "or an encoder (mpnet) to train a teacher from on a third of the questions first. Default, "
                        "with no --backbone: an mpnet teacher where the CPU has bf16 matrix units (AMX) and mpnet is "
                        "installed, else none. `--teacher none`: MiniLM trained alone")
    _param_option(t)
    a = sub.add_parser("adapt", help="adapt a reader to unlabelled passages with synthesised questions (the "
                       "result is averaged with the starting reader: --param init_weight=0 turns that off)")
    a.add_argument("reader", metavar="DIR")
    a.add_argument("unlabelled", metavar="UNLABELLED",
                   help="a .txt file of paragraphs separated by blank lines, or a SQuAD JSON (questions ignored)")
    a.add_argument("--out", required=True, help="folder to save the adapted reader into")
    a.add_argument("--per-passage", type=int, default=4, help="synthesised questions per passage at most (4)")
    a.add_argument("--replay", default=None, metavar="DATA",
                   help="a SQuAD file of real questions to mix in (default: the questions the reader folder keeps "
                        "from its own training, replay.json)")
    a.add_argument("--replay-count", type=int, default=500, help="how many replayed questions (500)")
    a.add_argument("--no-replay", dest="replay_count", action="store_const", const=0,
                   help="mix no real questions in (synthesised ones only)")
    a.add_argument("--no-roundtrip", dest="roundtrip", action="store_false",
                   help="keep every synthesised question (default: only those the reader already answers with the "
                        "synthesised answer, round-trip consistency)")
    _param_option(a)
    e = sub.add_parser("evaluate", help="official SQuAD v1.1 exact match and F1 on a SQuAD file")
    e.add_argument("reader", metavar="DIR")
    e.add_argument("data", metavar="DATA")
    e.add_argument("--out", default=None, metavar="FOLDER",
                   help="write predictions.json, per_question.json and mistakes.json there")
    e.add_argument("--json", action="store_true", help="print {exact_match, f1, count} as JSON on stdout")
    k = sub.add_parser("ask", help="answer questions about a passage")
    k.add_argument("reader", metavar="DIR")
    k.add_argument("--context", required=True, metavar="FILE", help="a text file holding the passage (- for stdin)")
    k.add_argument("--question", action="append", required=True, metavar="Q", help="a question (repeatable)")
    k.add_argument("--json", action="store_true", help="print {answers: [...]} as JSON on stdout")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from transferlab.cli.train import parse_param

    params = dict(parse_param(t) for t in args.param)
    if args.backbone is not None:
        params["backbone"] = args.backbone
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if getattr(args, "teacher", None) is not None:
        params["teacher"] = None if args.teacher.lower() == "none" else args.teacher
    return params


def _print_training(result: Any, as_json: bool) -> None:  # noqa: ANN401
    m = result.metrics
    if as_json:
        print_json({k: v for k, v in m.items()} | {"out": str(result.out), "skipped": len(result.report.skipped)})
        return
    print(f"trained on {m['train_questions']} questions in {m['train_seconds'] / 60:.1f} min; saved to {result.out}/")
    if result.report.skipped:
        print(f"skipped {len(result.report.skipped)} question(s): see {result.out}/data_report.json")
    if "f1" in m:
        print(f"{m['eval_data']}: exact match {m['exact_match']:.2f}  F1 {m['f1']:.2f}  ({m['count']} questions)")


def _read_context(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise UserError(f"{name}: not a UTF-8 text file ({type(exc).__name__})") from None


def run(args: argparse.Namespace) -> int:
    from transferlab.workflows import qa

    if args.qa_command == "train":
        result = qa.train_reader(args.data, out=args.out, init=args.init, params=_params(args), seed=args.seed,
                                 resume=args.resume, eval_data=args.eval_data, limit=args.limit)
        _print_training(result, args.json)
    elif args.qa_command == "adapt":
        result = qa.adapt_reader(args.reader, args.unlabelled, out=args.out, per_passage=args.per_passage,
                                 replay=args.replay, replay_count=args.replay_count, params=_params(args),
                                 seed=args.seed, resume=args.resume, eval_data=args.eval_data,
                                 roundtrip=args.roundtrip)
        _print_training(result, args.json)
    elif args.qa_command == "evaluate":
        m = qa.evaluate_reader(args.reader, args.data)
        if args.out:
            qa.write_evaluation(m, Path(args.out))
        if args.json:
            print_json({"exact_match": m["exact_match"], "f1": m["f1"], "count": m["count"],
                        "questions_per_second": m["questions_per_second"]})
        else:
            print(f"exact match {m['exact_match']:.2f}  F1 {m['f1']:.2f}  ({m['count']} questions, "
                  f"{m['questions_per_second']:.1f} questions/s)")
    else:
        answers = qa.ask(args.reader, _read_context(args.context), args.question)
        if args.json:
            print_json({"answers": answers})
        else:
            for a in answers:
                shown = a["answer"] if a["answer"] else "(no answer)"
                print(f"{a['question']}\n  {shown}  (score {a['score']:.2f}, at {a['start']})")
    return 0
