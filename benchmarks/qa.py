"""Extractive question answering (issue 14): a reader trained with defaults on squad_v1.1/train.json, evaluated on
the whole test.json; the learning curve; domain transfer to SQuADShifts; answering speed.

Each part merges its rows into benchmarks/results/qa.json (so parts can run separately, one at a time, on the shared
2-core machines); readers are kept under runs/qa/ and reused by later parts.

    .venv/bin/python benchmarks/qa.py --default                   # train.json -> test.json, EM/F1, minutes
    .venv/bin/python benchmarks/qa.py --default --eval-only --eval-limit 1000   # the saved reader, 1,000 questions
    .venv/bin/python benchmarks/qa.py --train-sizes 250 1000      # learning-curve points (test.json, or --eval-limit)
    .venv/bin/python benchmarks/qa.py --domains squadshifts_amazon --modes as_is no_labels labels scratch
    .venv/bin/python benchmarks/qa.py --speed                     # questions/s in batch, p50 ms for one question

Domain modes: ``as_is`` the SQuAD reader on the domain's test.json; ``labels`` that reader fine-tuned on the
domain's train.json (``qa train --init``); ``no_labels`` ``qa adapt`` with defaults on the contexts of the domain's
train.json and test.json with their questions removed (unlabelled text of the domain, as a user would have it): it
replays the 500 real questions the reader folder keeps (``replay.json``); ``scratch`` a reader trained on the
domain's train.json alone from MiniLM; ``no_labels_no_replay`` as ``no_labels`` with ``--no-replay``;
``no_labels_replay`` as ``no_labels`` with ``--replay squad_v1.1/train.json`` (its seeded sample of 500 is the same
questions the reader keeps, in another order).

A reader saved before readers kept ``replay.json`` gets the file ``qa train`` now writes (seed 0, 500 questions of
squad_v1.1/train.json) before the first adaptation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, SHARED, cpu_kind, print_table  # noqa: E402

RUNS = ROOT / "runs" / "qa"


def _merge(part: str, value: Any) -> None:
    path = RESULTS / "qa.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.setdefault("machine", {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()})
    doc[part] = value
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)
    print(f"wrote {path} [{part}]")


def _subset(data: Path, limit: int | None, seed: int = 0) -> Path:
    """The first ``limit`` questions of a seeded shuffle of ``data``, as a SQuAD file (whole file when None)."""
    if limit is None:
        return data
    doc = json.loads(data.read_text())
    ids = [qa["id"] for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]
    keep = set(random.Random(seed).sample(ids, min(limit, len(ids))))
    for a in doc["data"]:
        for p in a["paragraphs"]:
            p["qas"] = [qa for qa in p["qas"] if qa["id"] in keep]
        a["paragraphs"] = [p for p in a["paragraphs"] if p["qas"]]
    out = RUNS / "data" / f"{data.parent.name}-{data.stem}-{limit}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc))
    return out


def _evaluate(reader: Any, data: Path) -> dict[str, Any]:  # noqa: ANN401
    from transferlab.workflows.qa import evaluate_reader

    m = evaluate_reader(reader, data)
    return {"exact_match": round(m["exact_match"], 2), "f1": round(m["f1"], 2), "count": m["count"],
            "answer_minutes": round(m["answer_seconds"] / 60, 2)}


def _train(data: Path, out: Path, limit: int | None = None, init: str | None = None,
           params: dict[str, Any] | None = None) -> dict[str, Any]:
    from transferlab.workflows.qa import train_reader

    r = train_reader(data, out=out, init=init, params=params, limit=limit)
    return {"train_questions": r.metrics["train_questions"], "train_minutes": round(r.metrics["train_seconds"] / 60, 2),
            "steps_per_epoch": r.metrics["steps_per_epoch"], "out": str(out)}


def check_candidate(key: str, params: dict[str, Any], max_minutes: float, selection_f1_to_beat: float) -> None:
    """A candidate default recipe judged by a rule fixed before its run: train on squad_v1.1/train.json with
    ``params``; adopt when it trains within ``max_minutes`` and its F1 on the selection set (4,000 questions of
    train_full_subset, other articles) reaches ``selection_f1_to_beat``; test.json is evaluated afterwards and reported
    whatever it says. Rows under ``key`` in results/qa.json (benchmarks/qa_nodrop.py, qa_epochs.py)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    squad = SHARED / "squad_v1.1"
    out = RUNS / f"reader_{key.removeprefix('candidate_')}"
    row = {"params": params, "load_average_before": os.getloadavg(), **_train(squad / "train.json", out,
                                                                             params=params)}
    row["heldout_4000"] = _evaluate(out, _subset(squad / "train_full_subset.json", 4000))
    row["adopt"] = row["train_minutes"] <= max_minutes and row["heldout_4000"]["f1"] >= selection_f1_to_beat
    print("held-out:", row["heldout_4000"], "minutes:", row["train_minutes"], "adopt:", row["adopt"], flush=True)
    _merge(key, row)
    row.update(_evaluate(out, squad / "test.json"))
    print(row)
    _merge(key, row)


def default_run(eval_limit: int | None, eval_only: bool, heldout: bool = False) -> None:
    """Train with defaults (unless ``eval_only``: the saved reader and its metrics.json are reused), evaluate."""
    squad = SHARED / "squad_v1.1"
    out = RUNS / "reader_default"
    path = RESULTS / "qa.json"
    runs = json.loads(path.read_text()).get("default", []) if path.exists() else []
    runs = runs if isinstance(runs, list) else [runs]
    row: dict[str, Any] = {"command": "benchmarks/qa.py --default (= transferlab qa train squad_v1.1/train.json "
                                      "--out runs/qa/reader_default; qa evaluate runs/qa/reader_default "
                                      "squad_v1.1/test.json)", "load_average_before": os.getloadavg(),
                           "cpu": cpu_kind()}
    if eval_only:
        m = json.loads((out / "metrics.json").read_text())
        row.update({"train_questions": m["train_questions"], "train_minutes": round(m["train_seconds"] / 60, 2),
                    "steps_per_epoch": m["steps_per_epoch"], "out": str(out), "eval_only": True})
    else:
        row.update(_train(squad / "train.json", out))
    if heldout:  # the selection set of benchmarks/qa_sweep.py: other articles, never test.json
        row["heldout_4000"] = _evaluate(out, _subset(squad / "train_full_subset.json", 4000))
        print("held-out (train_full_subset, 4,000 questions):", row["heldout_4000"])
    row.update(_evaluate(out, _subset(squad / "test.json", eval_limit)))
    print_table([row], ["train_questions", "train_minutes", "exact_match", "f1", "count", "answer_minutes"])
    # one row per evaluation size and kind of CPU (what the reader's recipe is depends on its bf16 units)
    _merge("default", [r for r in runs if (r.get("count"), r.get("cpu")) != (row["count"], row["cpu"])] + [row])


def learning_curve(sizes: list[int], eval_limit: int | None) -> None:
    squad = SHARED / "squad_v1.1"
    path = RESULTS / "qa.json"
    rows = json.loads(path.read_text()).get("learning_curve", []) if path.exists() else []
    test = _subset(squad / "test.json", eval_limit)
    for n in sizes:
        out = RUNS / f"reader_{n}"
        data = squad / ("train_full_subset.json" if n > 2921 else "train.json")
        row = {"size": n, **_train(data, out, limit=n), **_evaluate(out, test)}
        rows = [r for r in rows if r["size"] != n or r.get("count") != row["count"]] + [row]
        print_table([row], ["size", "train_minutes", "exact_match", "f1", "count"])
        _merge("learning_curve", sorted(rows, key=lambda r: (r["size"], r["count"])))


def _contexts_only(domain: Path) -> Path:
    """The domain's train.json and test.json contexts as paragraphs of a .txt file (questions removed)."""
    seen, paras = set(), []
    for name in ("train.json", "test.json"):
        for a in json.loads((domain / name).read_text())["data"]:
            for p in a["paragraphs"]:
                if p["context"] not in seen:
                    seen.add(p["context"])
                    paras.append(" ".join(p["context"].split()))
    out = RUNS / "data" / f"{domain.name}-contexts.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n\n".join(paras))
    return out


def _keep_replay_sample(reader: Path) -> None:
    """The replay.json ``qa train`` writes (a seeded sample of its training questions), for a reader saved before."""
    from transferlab.data.squad import read_squad, write_squad
    from transferlab.workflows.qa import REPLAY_FILE, REPLAY_KEEP

    if not (reader / REPLAY_FILE).exists():
        examples, _ = read_squad(SHARED / "squad_v1.1" / "train.json")
        write_squad(random.Random(0).sample(examples, min(REPLAY_KEEP, len(examples))), reader / REPLAY_FILE)
        print(f"wrote {reader / REPLAY_FILE} (as `qa train` now does)")


def domain_transfer(domains: list[str], modes: list[str], eval_limit: int | None) -> None:
    from transferlab.workflows.qa import adapt_reader

    reader = RUNS / "reader_default"
    _keep_replay_sample(reader)
    path = RESULTS / "qa.json"
    table = json.loads(path.read_text()).get("domain_transfer", {}) if path.exists() else {}
    for name in domains:
        domain = SHARED / name
        test = _subset(domain / "test.json", eval_limit)
        rows = table.get(name, {})
        for mode in modes:
            t0 = time.perf_counter()
            if mode == "as_is":
                row: dict[str, Any] = {}
                target = reader
            elif mode == "labels":
                target = RUNS / f"{name}-labels"
                row = _train(domain / "train.json", target, init=str(reader))
            elif mode == "scratch":
                target = RUNS / f"{name}-scratch"
                row = _train(domain / "train.json", target)
            elif mode in ("no_labels", "no_labels_replay", "no_labels_no_replay"):
                target = RUNS / f"{name}-{mode}"
                replay = str(SHARED / "squad_v1.1" / "train.json") if mode == "no_labels_replay" else None
                r = adapt_reader(reader, _contexts_only(domain), out=target, replay=replay,
                                 replay_count=0 if mode == "no_labels_no_replay" else 500)
                row = {"synthesised_questions": r.metrics["synthesised_questions"],
                       "kept_questions": r.metrics.get("kept_questions"),
                       "replay_questions": r.metrics["replay_questions"],
                       "train_minutes": round(r.metrics["train_seconds"] / 60, 2)}
            else:
                raise SystemExit(f"unknown mode {mode}")
            row.update(_evaluate(target, test))
            row["minutes"] = round((time.perf_counter() - t0) / 60, 2)
            rows[mode] = row
            table[name] = rows
            print(name, mode, row)
            _merge("domain_transfer", table)


def _speed_of(reader: Any, short: list[Any]) -> tuple[float, float]:
    """(questions/s answering all of ``short`` in one call, p50 ms of one question about one passage)."""
    reader.answer([e.question for e in short[:8]], [e.context for e in short[:8]])  # warm-up
    t0 = time.perf_counter()
    reader.answer([e.question for e in short], [e.context for e in short])
    qps = len(short) / (time.perf_counter() - t0)
    times = []
    for e in short[:60]:
        t = time.perf_counter()
        reader.answer([e.question], [e.context])
        times.append((time.perf_counter() - t) * 1000)
    return round(qps, 1), round(statistics.median(times), 1)


def speed(reader_name: str = "reader_default") -> None:
    """Questions/s on short passages (<= 120 words, all their questions in one call) and the p50 latency of one
    question about one short passage, reader loaded once: the saved reader (PyTorch; in bf16 where the CPU has bf16
    matrix units, then also in float32) and its ONNX export run by the copyable runtime (onnxruntime, float32)."""
    from transferlab._torch import native_bf16
    from transferlab.data.squad import read_squad
    from transferlab.deploy.export import export_model
    from transferlab.workflows.qa import load_reader

    examples, _ = read_squad(SHARED / "squad_v1.1" / "test.json")
    short = [e for e in examples if len(e.context.split()) <= 120][:400]
    row: dict[str, Any] = {"short_passages": len(short), "cpu_bf16_units": native_bf16()}
    reader = load_reader(RUNS / reader_name)  # bf16 on a CPU with bf16 matrix units (AMX), else float32
    row["reader"], row["body"], row["reader_bf16"] = reader_name, reader.weights.get("base"), reader.bf16
    row["questions_per_second"], row["p50_ms_one_question"] = _speed_of(reader, short)
    if reader.bf16:  # the same reader in float32, for comparison
        os.environ["TRANSFERLAB_BF16"] = "0"
        row["float32_questions_per_second"], row["float32_p50_ms_one_question"] = _speed_of(
            load_reader(RUNS / reader_name), short)
        del os.environ["TRANSFERLAB_BF16"]
    export_dir = export_model(RUNS / reader_name, RUNS / f"{reader_name}_onnx")
    # the export in a process of its own, as `serve` runs it (torch's idle threads would share the cores)
    import subprocess

    proc = subprocess.run([sys.executable, __file__, "--speed-exported", str(export_dir)], capture_output=True,
                          text=True, check=True)
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    row["load_average"] = os.getloadavg()
    print(row)
    _merge("speed" if reader_name == "reader_default" else f"speed_{reader_name}", row)


def speed_exported(export_dir: str) -> None:
    """The exported reader's speed, run by the copyable runtime alone (prints one JSON line)."""
    from transferlab.data.squad import read_squad

    sys.path.insert(0, export_dir)
    import transferlab_runtime

    examples, _ = read_squad(SHARED / "squad_v1.1" / "test.json")
    short = [e for e in examples if len(e.context.split()) <= 120][:400]
    qps, p50 = _speed_of(transferlab_runtime.load(export_dir), short)
    print(json.dumps({"onnx_questions_per_second": qps, "onnx_p50_ms_one_question": p50}))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--default", action="store_true")
    p.add_argument("--train-sizes", type=int, nargs="*", default=[])
    p.add_argument("--domains", nargs="*", default=[])
    p.add_argument("--modes", nargs="*", default=["as_is", "labels", "no_labels", "scratch"])
    p.add_argument("--speed", action="store_true")
    p.add_argument("--speed-reader", default="reader_default", help="--speed: the reader folder under runs/qa/")
    p.add_argument("--speed-exported", default=None, help=argparse.SUPPRESS)
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on N questions of a seeded shuffle")
    p.add_argument("--eval-only", action="store_true", help="--default: evaluate the saved reader, do not train")
    p.add_argument("--heldout", action="store_true",
                   help="--default: also evaluate on 4,000 questions of train_full_subset (qa_sweep's selection set)")
    args = p.parse_args()
    if args.default:
        default_run(args.eval_limit, args.eval_only, args.heldout)
    if args.train_sizes:
        learning_curve(args.train_sizes, args.eval_limit)
    if args.domains:
        domain_transfer(args.domains, args.modes, args.eval_limit)
    if args.speed:
        speed(args.speed_reader)
    if args.speed_exported:
        speed_exported(args.speed_exported)


if __name__ == "__main__":
    main()
