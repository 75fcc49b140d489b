"""Trained text models on the shared sets (train split -> test split), and few-shot sst2.

    .venv/bin/python benchmarks/text_models.py --runs sst2:text_embedding_cnn sst2:text_embedding_cnn:embeddings=random
    .venv/bin/python benchmarks/text_models.py --runs sst2:text_finetune ag_news:text_finetune:max_length=128
    .venv/bin/python benchmarks/text_models.py --fewshot 8 64 [--draws 5] [--setfit-reference]
    .venv/bin/python benchmarks/text_models.py --fewshot 8 --fewshot-strategies text_fewshot \
        text_fewshot:label_prompts=false text_headless --setfit-reference

A run is DATASET:STRATEGY[:param=value,...]. Rows are merged into benchmarks/results/text_models.json (a row with the
same dataset, strategy, parameters and kind of CPU is replaced; ``cpu_bf16_units``: whether the CPU has bf16 matrix
units, which decide the body and precision ``auto`` trains; rows written before it was recorded have none, and neither
replace nor are replaced by the rows that have it; ``cpu``: the CPU's name, family and model, likewise). ``--fewshot
K`` draws K examples per class from sst2's train split (seeds 0..draws-1), trains ``text_fewshot`` and, for
comparison, ``text_headless``, and reports the mean test accuracy. ``--setfit-reference`` also runs the SetFit library
(same MiniLM, same draws, the same pairs per example, epochs, body learning rate, batch size and max length as
``text_fewshot``'s defaults) when it is importable; it is not a dependency of transferlab, only of the optional
``bench`` extra (``pip install -e .[bench] -c requirements/constraints.txt`` adds packages and changes no pinned
version). Or keep it out of the venv entirely (how the figures in the results were measured):

    .venv/bin/pip install --no-deps --target /tmp/setfit_site setfit==1.2.0 datasets==5.2.0 evaluate==0.4.6 \
        accelerate==1.15.0 pandas==3.1.1 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 psutil==7.2.2 aiohttp==3.14.5 \
        aiohappyeyeballs==2.7.1 aiosignal==1.4.0 frozenlist==1.8.0 multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 \
        requests==2.34.2 urllib3==2.8.0 charset-normalizer==3.5.2 certifi==2026.10.18 attrs==26.1.0
    PYTHONPATH=/tmp/setfit_site .venv/bin/python benchmarks/text_models.py --fewshot 8 64 --setfit-reference

Issue 13, acceptance 1: what ``--strategy auto`` chooses and fits on each draw (``auto``: text_fewshot on mpnet where
it is installed, in bf16 on a CPU with bf16 matrix units, else only its top 4 layers in float32), beside the SetFit
library with its own default arguments on the same encoder:

    PYTHONPATH=/tmp/setfit_site .venv/bin/python benchmarks/text_models.py --fewshot 8 64 --fewshot-strategies auto \
        --setfit-reference --references "setfit (library, defaults)" --setfit-encoder mpnet
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFERLAB_QUIET", "1")

from _common import cpu_kind  # noqa: E402
from transferlab.data.texts import TextDataset, read_text_file  # noqa: E402
from transferlab.evaluation import classification_metrics  # noqa: E402
from transferlab.workflows.common import build_strategy  # noqa: E402


def make_text_strategy(name, **params):
    return build_strategy(name, "text", params=params)


ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERLAB_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "benchmarks" / "results" / "text_models.json"
TARGETS = {"sst2": ("accuracy", 0.86), "ag_news": ("accuracy", 0.90), "newsgroups20": ("accuracy", 0.75),
           "sms_spam": ("macro_f1", 0.95)}
FEWSHOT_TARGETS = {8: 0.85, 64: 0.88}  # issue 13 (issue 1's were 0.75 and 0.83)


def _value(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_run(spec: str) -> tuple[str, str, dict]:
    parts = spec.split(":")
    params = {}
    if len(parts) > 2 and parts[2]:
        for item in parts[2].split(","):
            key, value = item.split("=", 1)
            params[key] = _value(value)
    return parts[0], parts[1], params


def load(dataset: str) -> tuple[TextDataset, TextDataset]:
    train = read_text_file(SHARED / dataset / "train.csv")
    test = read_text_file(SHARED / dataset / "test.csv")
    train.classes = sorted(set(train.labels or []))
    test.classes = train.classes
    return train, test


def run(dataset: str, strategy: str, params: dict) -> dict:
    train, test = load(dataset)
    model = make_text_strategy(strategy, **params)
    t0 = time.perf_counter()
    model.fit(train)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = classification_metrics(test.y, model.predict_proba(test), model.classes_)
    metric, target = TARGETS[dataset]
    return {"dataset": dataset, "strategy": model.name, "params": params, "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"], "train_seconds": train_seconds,
            "predict_seconds": time.perf_counter() - t0, "n_train": len(train), "n_test": len(test),
            "target_metric": metric, "target": target, "met": m[metric] >= target,
            "history": getattr(model, "history_", None), "cpu_count": os.cpu_count(),
            "cpu_bf16_units": cpu_bf16_units(), "cpu": cpu_kind()}


def draw(train: TextDataset, k: int, seed: int) -> TextDataset:
    rng = np.random.default_rng(seed)
    y = np.asarray(train.labels)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c in train.classes])
    sub = train.subset(rng.permutation(idx).tolist())
    sub.classes = list(train.classes)
    return sub


def setfit_accuracy(sub: TextDataset, test: TextDataset, seed: int, params: dict | None,
                    label_prompts: bool = False, encoder: str = "minilm") -> tuple[float, float] | None:
    """Test accuracy and training seconds of the SetFit library on the same draw, with our strategy's settings
    (pairs per example, epochs, body learning rate, batch size, max length), or with the library's own defaults
    (``params`` None); None when setfit is not importable.
    ``label_prompts``: the draw plus the same templated class-name sentences ``text_fewshot`` adds."""
    from transferlab._torch import import_torchvision

    import_torchvision()  # transformers imports torchvision: needs the op-schema fix first
    try:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError:
        return None
    from transferlab.backbones import transformer_folder

    model = SetFitModel.from_pretrained(transformer_folder(encoder))
    common = {"seed": seed, "report_to": "none", "output_dir": tempfile.mkdtemp(prefix="setfit_"),
              "save_strategy": "no"}
    if params is None:  # the library's own defaults
        args = TrainingArguments(**common)
    else:
        args = TrainingArguments(batch_size=int(params["batch_size"]), num_epochs=int(params["epochs"]),
                                 num_iterations=int(params["num_iterations"]), body_learning_rate=float(params["lr"]),
                                 max_length=int(params["max_length"]), **common)
    texts, labels = list(sub.texts), list(sub.labels or [])
    if label_prompts:
        from transferlab.strategies.text_fewshot import label_prompt_examples

        extra, idx = label_prompt_examples(list(sub.classes))
        texts += extra
        labels += [sub.classes[i] for i in idx]
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": texts, "label": labels}))
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    pred = model.predict(test.texts)
    return float(np.mean(np.asarray([str(p) for p in pred]) == np.asarray(test.labels))), seconds


def _strategy_spec(spec: str) -> tuple[str, dict]:
    """``text_fewshot`` or ``text_fewshot:label_prompts=false,C=2``: a strategy and its parameters."""
    if spec in REFERENCES:
        return spec, {}
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=", 1)
        params[key] = _value(value)
    return name, params


REFERENCES = {"setfit (library)": False, "setfit (library) + label prompts": True, "setfit (library, defaults)": False}


def fewshot(shots: list[int], draws: int, strategies: list[str], reference: bool, out: Path,
            first_draw: int = 0, reference_shots: list[int] | None = None,
            references: list[str] | None = None, setfit_encoder: str = "minilm", with_dev: bool = False) -> list[dict]:
    """Every strategy (and SetFit) on the same draws, draw by draw; rows are saved after every draw, so an
    interrupted run keeps what it measured (``draws`` lists the accuracies so far; ``first_draw`` resumes one, with
    seeds first_draw.. first_draw + draws - 1). ``with_dev``: each of our models is also scored on sst2's dev split
    (872 sentences, never drawn from), so a setting can be chosen there rather than on test (``dev_draws``,
    ``dev_accuracy``)."""
    train, test = load("sst2")
    dev = read_text_file(SHARED / "sst2" / "dev.csv") if with_dev else None
    rows = []
    for k in shots:
        with_reference = reference and (reference_shots is None or k in reference_shots)
        names = strategies + (list(references or list(REFERENCES)[:2]) if with_reference else [])
        accs: dict[str, list[float]] = {n: [] for n in names}
        seconds: dict[str, list[float]] = {n: [] for n in names}
        chose: dict[str, list[str]] = {n: [] for n in names}
        dev_accs: dict[str, list[float]] = {n: [] for n in names}
        for seed in range(first_draw, first_draw + draws):
            sub = draw(train, k, seed)
            for strategy in list(names):
                if strategy in REFERENCES:
                    ours = None if "defaults" in strategy else make_text_strategy("text_fewshot").get_params()
                    got = setfit_accuracy(sub, test, seed, ours, REFERENCES[strategy], setfit_encoder)
                    if got is None:
                        print("setfit is not installed: reference skipped", flush=True)
                        names.remove(strategy)
                        continue
                    acc, fit_s = got
                else:
                    t0 = time.perf_counter()
                    if strategy == "auto":  # what `transferlab train --strategy auto` chooses, timed with its fit
                        from transferlab.workflows.auto import auto_select

                        choice = auto_select(sub, "text", seed=seed)
                        chose[strategy].append(f"{choice.strategy} {json.dumps(choice.params, sort_keys=True)}")
                        name, params = choice.strategy, choice.params
                    else:
                        name, params = _strategy_spec(strategy)
                    model = make_text_strategy(name, **params, seed=seed).fit(sub)
                    fit_s = time.perf_counter() - t0
                    acc = float((model.predict(test) == np.asarray(test.labels)).mean())
                    if dev is not None:
                        dev_accs[strategy].append(float((model.predict(dev) == np.asarray(dev.labels)).mean()))
                        print(f"sst2 {k}/class {strategy} draw {seed}: dev {dev_accs[strategy][-1]:.4f}", flush=True)
                accs[strategy].append(acc)
                seconds[strategy].append(fit_s)
                print(f"sst2 {k}/class {strategy} draw {seed}: {acc:.4f} (train {fit_s:.0f} s)", flush=True)
            k_rows = []
            for n in names:
                if not accs[n]:
                    continue
                seeds = list(range(first_draw, first_draw + len(accs[n])))
                row = {"dataset": "sst2", "strategy": _strategy_spec(n)[0],
                       "params": {"shots_per_class": k, **_strategy_spec(n)[1]}, "cpu_bf16_units": cpu_bf16_units(),
                       "cpu": cpu_kind()}
                by_seed = _earlier_draws(row, out, setfit_encoder if n in REFERENCES else None)
                by_seed.update({s: (a, t) for s, a, t in zip(seeds, accs[n], seconds[n], strict=True)})
                seeds = sorted(by_seed)
                got = [by_seed[s][0] for s in seeds]
                k_rows.append({**row, "accuracy": float(np.mean(got)), "accuracy_std": float(np.std(got)),
                               "draws": got, "seeds": seeds,
                               "draw_seconds": [by_seed[s][1] for s in seeds],
                               "train_seconds": float(np.mean([by_seed[s][1] for s in seeds])),
                               "target_metric": "accuracy", "target": FEWSHOT_TARGETS.get(k),
                               "met": float(np.mean(got)) >= FEWSHOT_TARGETS.get(k, 0), "cpu_count": os.cpu_count(),
                               **({"chose": chose[n]} if chose[n] else {}),
                               **({"dev_draws": dev_accs[n], "dev_seeds": list(range(first_draw, first_draw
                                   + len(dev_accs[n]))), "dev_accuracy": float(np.mean(dev_accs[n]))}
                                  if dev_accs[n] else {}),
                               **({"encoder": setfit_encoder} if n in REFERENCES else {})})
            save(k_rows, out)
        rows += k_rows
    return rows


def cpu_bf16_units() -> bool:
    """Whether this CPU has bf16 matrix units (AMX): they decide what ``auto`` trains, so rows are kept per kind."""
    from transferlab._torch import native_bf16

    return bool(native_bf16())


def _earlier_draws(row: dict, out: Path, encoder: str | None) -> dict[int, tuple[float, float]]:
    """Accuracy and seconds by seed of the same row from an earlier (interrupted, then resumed) run, so that
    ``--first-draw`` adds draws to the row instead of replacing it. Only rows that recorded their seeds (and, for
    the SetFit reference, the same encoder) are merged."""
    if not out.exists():
        return {}
    for p in json.loads(out.read_text()).get("rows", []):
        same = [p["dataset"], p["strategy"], p.get("params", {}), p.get("cpu_bf16_units"), p.get("cpu")] == \
            [row["dataset"], row["strategy"], row["params"], row.get("cpu_bf16_units"), row.get("cpu")]
        if same and "seeds" in p and p.get("encoder") == encoder and "draw_seconds" in p:
            got = zip(p["seeds"], p["draws"], p["draw_seconds"], strict=True)
            return {int(s): (float(a), float(t)) for s, a, t in got}
    return {}


def save(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()).get("rows", []) if out.exists() else []

    def key(r: dict) -> str:
        return json.dumps([r["dataset"], r["strategy"], r.get("params", {}), r.get("cpu_bf16_units"), r.get("cpu")],
                          sort_keys=True)

    new = {key(r) for r in rows}
    out.write_text(json.dumps({"rows": [p for p in previous if key(p) not in new] + rows}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="*", default=[])
    ap.add_argument("--fewshot", nargs="*", type=int, default=[])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--fewshot-strategies", nargs="*", default=["text_fewshot", "text_headless"])
    ap.add_argument("--first-draw", type=int, default=0, help="seed of the first draw (resume a run)")
    ap.add_argument("--setfit-reference", action="store_true")
    ap.add_argument("--reference-shots", nargs="*", type=int, default=None,
                    help="run the SetFit reference only for these shots per class (default: all)")
    ap.add_argument("--references", nargs="*", default=list(REFERENCES)[:2], choices=list(REFERENCES),
                    help="which SetFit runs --setfit-reference adds")
    ap.add_argument("--setfit-encoder", default="minilm", help="the body the SetFit library starts from")
    ap.add_argument("--with-dev", action="store_true", help="also score our models on sst2's dev split")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    out = Path(args.out)
    for spec in args.runs:
        r = run(*parse_run(spec))
        print(f"{r['dataset']:<14}{r['strategy']:<22}{json.dumps(r['params']):<30}{r['accuracy']:>8.4f}"
              f"{r['macro_f1']:>8.4f}{r['train_seconds']:>8.0f}s  {'ok' if r['met'] else 'MISS'}", flush=True)
        save([r], out)
    if args.fewshot:
        rows = fewshot(args.fewshot, args.draws, args.fewshot_strategies, args.setfit_reference, out, args.first_draw,
                       args.reference_shots, args.references, args.setfit_encoder, args.with_dev)
        for r in rows:
            extra = ",".join(f"{k}={v}" for k, v in r["params"].items() if k != "shots_per_class")
            print(f"sst2 {r['params']['shots_per_class']}/class {r['strategy'] + ' ' + extra:<34}{r['accuracy']:.4f} "
                  f"+- {r['accuracy_std']:.4f} over {len(r['draws'])} draws, train {r['train_seconds']:.0f} s",
                  flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
