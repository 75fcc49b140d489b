"""Fine-tuning benchmarks: accuracy against from-scratch and headless, and training throughput.

    .venv/bin/python benchmarks/finetune.py [--parts throughput,hymenoptera,dtd,dtd_lpft,hymenoptera_bf16,defaults]
                                            [--seeds 3] [--sets hymenoptera dtd_subset ...]

* hymenoptera: ``gradual_unfreeze`` on efficientnet_lite0 (target >= 0.96 val accuracy, <= 3 min training on
  2 cores) beside ``from_scratch`` with the same epochs;
* dtd_subset: the best fine-tuning run vs ``headless`` (target +2 points or >= 0.84);
* defaults (issue 13): ``gradual_unfreeze``, ``finetune`` and ``finetune_top`` with default parameters (backbone
  ``auto``: the one ``rank`` puts first) against ``headless`` on the same backbone, on each shared image set, mean
  over seeds, each set from a cold feature cache;
* throughput of a full Lite0 fine-tuning step (forward + backward + AdamW) at 224 px, fp32 (target >= 9 img/s)
  and bf16 autocast.

Prints a table and writes benchmarks/results/finetune.json. The cores are shared on these machines: timings are
pessimistic when other work runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRANSFERLAB_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
RESULTS = ROOT / "benchmarks" / "results" / "finetune.json"

HYMENOPTERA = {"n_stages": 2, "head_epochs": 2, "stage_epochs": 1, "epochs": 2, "lr": 3e-4, "head_lr": 2e-3}
SCRATCH = {"epochs": 5, "lr": 1e-3, "head_lr": 1e-3}  # same number of epochs as the run above
# textures: a larger input helps; all of train is used (a fixed budget instead of early stopping on 15 images)
DTD = {"input_size": 288, "n_stages": 3, "head_epochs": 4, "stage_epochs": 2, "val_fraction": 0.0, "lr": 3e-4,
       "head_lr": 3e-3}
DTD_TOP = {"input_size": 288, "n_groups": 3, "epochs": 10, "val_fraction": 0.0, "lr": 3e-4, "head_lr": 3e-3}
# LP-FT: the head starts from the logistic-regression probe, the last two layer groups train at a small learning
# rate, no label smoothing. On Lite2 (headless 0.833); on Lite1 (headless 0.853) the same recipe gave 0.827, and
# longer or stronger fine-tuning lower still (0.813), see the closing notes of the fine-tuning issue.
DTD_LPFT = {"n_groups": 2, "head_init": "probe", "lr": 3e-5, "head_lr": 3e-5, "epochs": 4, "val_fraction": 0.0,
            "patience": None, "label_smoothing": 0.0}
DTD_LPFT_BACKBONE = "efficientnet_lite2"


def throughput(bf16: bool, batch_size: int = 16, steps: int = 4) -> float:
    import torch

    from transferlab._torch import set_torch_threads
    from transferlab.strategies._network import build_net

    set_torch_threads()
    net = build_net("efficientnet_lite0", 10, 0.2, pretrained=True)
    net.set_trainable(len(net.backbone_groups()))
    net.train()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    x, y = torch.randn(batch_size, 3, 224, 224), torch.randint(0, 10, (batch_size,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch_size / min(times[1:])  # best step after a warm-up one


def run(data: Path, strategy: str, params: dict, out: Path, backbone: str | None = "efficientnet_lite0",
        seed: int = 0) -> dict:
    """One ``transferlab train``; ``backbone`` None leaves the strategy's default (``auto`` for fine-tuning), and the
    row names the backbone the run used."""
    from transferlab.workflows.train import train

    result = train(data, out=out, strategy=strategy, backbone=backbone, params=dict(params), seed=seed)
    m = result.metrics
    return {"dataset": data.name, "strategy": strategy, "backbone": result.model.config.get("backbone", backbone),
            "params": params, "seed": seed, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "train_seconds": m["train_seconds"], "total_seconds": m.get("total_seconds")}


FINE_TUNING = ("gradual_unfreeze", "finetune", "finetune_top")
IMAGE_SETS = ("hymenoptera", "cats_vs_dogs", "chest_xray_224", "dtd_subset")


def defaults(sets: list[str], seeds: list[int], tmp: Path, earlier: dict, save: Any,  # noqa: ANN401
             cold: bool = True) -> dict:
    """Issue 13, point 3: each fine-tuning strategy with default parameters (the backbone too: ``auto``, the one
    ``rank`` puts first) against ``headless`` on the backbone it used, per set and seed; also whether the run kept
    the linear probe (the fallback). ``cold``: each set starts from an empty feature cache, so the first run's wall
    time is what a user's first command takes. Runs of other seeds already in the results are kept, and the summary
    averages every seed recorded."""
    from transferlab import runtime

    runs = dict(earlier.get("runs", {}))
    for name in sets:
        data = DATASETS / name
        if not data.is_dir():
            print(f"skipping {name}: not found under {DATASETS}", flush=True)
            continue
        if cold:
            runtime.configure(cache_directory=str(tmp / f"cache_{name}"))
        for seed in seeds:
            used = set()
            for strategy in FINE_TUNING:
                out = tmp / f"{name}_{strategy}_{seed}"
                t0 = time.perf_counter()
                row = run(data, strategy, {}, out, backbone=None, seed=seed)
                row["wall_seconds"] = round(time.perf_counter() - t0, 1)
                used.add(row["backbone"])
                saved = json.loads((out / "history.json").read_text())
                check = saved.get("probe_check") or {}
                row["kept"] = check.get("kept")
                row["probe_check"] = check
                row["schedule"] = saved.get("schedule")
                row["backbone_ranking"] = saved.get("backbone_ranking")
                runs[f"{name}/{strategy}/seed{seed}"] = row
                print(f"{name} {strategy} seed {seed} on {row['backbone']}: {row['accuracy']:.4f} in "
                      f"{row['wall_seconds']:.0f} s (kept: {row['kept']})", flush=True)
                earlier["runs"] = runs  # the document's own dict: saved after every run
                save()
            for backbone in sorted(used):  # headless on every backbone the fine-tuning runs used
                t0 = time.perf_counter()
                row = run(data, "headless", {}, tmp / f"{name}_headless_{backbone}_{seed}", backbone, seed)
                row["wall_seconds"] = round(time.perf_counter() - t0, 1)
                runs[f"{name}/headless/{backbone}/seed{seed}"] = row
                print(f"{name} headless seed {seed} on {backbone}: {row['accuracy']:.4f}", flush=True)
                save()
    summary = []
    for name in IMAGE_SETS:
        for strategy in FINE_TUNING:
            mine = [r for k, r in runs.items() if k.startswith(f"{name}/{strategy}/")]
            keys = [f"{name}/headless/{r['backbone']}/seed{r['seed']}" for r in mine]
            base = [runs[k]["accuracy"] for k in keys if k in runs]
            if mine and len(base) == len(mine):
                accs = [r["accuracy"] for r in mine]
                summary.append({"dataset": name, "strategy": strategy, "seeds": len(accs),
                                "backbones": sorted({r["backbone"] for r in mine}),
                                "mean_accuracy": float(np.mean(accs)), "headless_mean": float(np.mean(base)),
                                "at_least_headless": bool(np.mean(accs) >= np.mean(base) - 1e-9),
                                "max_wall_seconds": max(r["wall_seconds"] for r in mine)})
    for r in summary:
        print(f"{r['dataset']:<16}{r['strategy']:<18}{'+'.join(r['backbones']):<20}{r['mean_accuracy']:>8.4f} vs "
              f"headless {r['headless_mean']:.4f} ({r['seeds']} seeds, wall <= {r['max_wall_seconds']:.0f} s) "
              f"{'ok' if r['at_least_headless'] else 'BELOW'}", flush=True)
    return {"runs": runs, "summary": summary,
            "rule": "default parameters (backbone auto: the one rank puts first; head from the linear probe, schedule "
                    "from the data-size rule, probe kept unless the fine-tuned network is significantly better on the "
                    "held-out images, McNemar's exact test at 5%); headless on the same backbone; accuracy on each "
                    "set's val/ split; each set from a cold feature cache (the first run's wall time includes the "
                    "ranking's feature extraction)"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="throughput,hymenoptera,dtd")
    ap.add_argument("--seeds", type=int, default=1, help="seeds of the dtd_lpft and defaults parts (0..seeds-1)")
    ap.add_argument("--first-seed", type=int, default=0, help="defaults part: seeds first-seed..first-seed+seeds-1")
    ap.add_argument("--sets", nargs="*", default=list(IMAGE_SETS), help="image sets of the defaults part")
    args = ap.parse_args()
    parts = args.parts.split(",")
    os.environ.setdefault("TRANSFERLAB_QUIET", "1")
    doc: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc["note"] = "2 CPU cores; see the closing notes for what else ran at the same time"
    rows = doc.setdefault("runs", {})
    tmp = Path(tempfile.mkdtemp(prefix="ft_bench_"))
    if {"throughput", "fp32", "bf16"} & set(parts):
        speeds = doc.setdefault("throughput_img_per_s", {})
        for name, bf16 in (("fp32", False), ("bf16", True)):
            if name in parts or "throughput" in parts:
                speeds[name] = throughput(bf16, steps=2)
                print(f"full Lite0 fine-tuning step, 224 px, batch 16, {name}: {speeds[name]:.1f} img/s", flush=True)
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(doc, indent=2))
    if "hymenoptera" in parts or "hymenoptera_transfer" in parts:
        data = DATASETS / "hymenoptera"
        rows["hymenoptera/gradual_unfreeze"] = run(data, "gradual_unfreeze", HYMENOPTERA, tmp / "h1")
        print(rows["hymenoptera/gradual_unfreeze"], flush=True)
    if "hymenoptera" in parts:  # the from-scratch baseline with the same number of epochs (slow: ~10 min here)
        rows["hymenoptera/from_scratch"] = run(data, "from_scratch", SCRATCH, tmp / "h2")
        print(rows["hymenoptera/from_scratch"], flush=True)
    if "hymenoptera_bf16" in parts:  # slow here: this CPU has no native bf16 matrix units
        data = DATASETS / "hymenoptera"
        rows["hymenoptera/gradual_unfreeze_bf16"] = run(data, "gradual_unfreeze", HYMENOPTERA | {"bf16": True},
                                                        tmp / "h1b")
        print(rows["hymenoptera/gradual_unfreeze_bf16"], flush=True)
    if "dtd" in parts:
        data = DATASETS / "dtd_subset"
        rows["dtd_subset/headless"] = run(data, "headless", {}, tmp / "d0")
        rows["dtd_subset/gradual_unfreeze"] = run(data, "gradual_unfreeze", DTD, tmp / "d1")
        print(rows["dtd_subset/gradual_unfreeze"], flush=True)
        rows["dtd_subset/finetune_top"] = run(data, "finetune_top", DTD_TOP, tmp / "d2")
        print(rows["dtd_subset/finetune_top"], flush=True)
    if "dtd_lpft" in parts:  # LP-FT on Lite2 beside Lite2's headless score, seeds 0..seeds-1
        data = DATASETS / "dtd_subset"
        short = DTD_LPFT_BACKBONE.replace("efficientnet_", "")
        for seed in range(args.seeds):
            rows[f"dtd_subset/headless_{short}/seed{seed}"] = run(data, "headless", {}, tmp / f"d3_{seed}",
                                                                  DTD_LPFT_BACKBONE, seed)
            name = f"dtd_subset/finetune_top_lpft_{short}/seed{seed}"
            rows[name] = run(data, "finetune_top", DTD_LPFT, tmp / f"d4_{seed}", DTD_LPFT_BACKBONE, seed)
            print(rows[name], flush=True)
            RESULTS.write_text(json.dumps(doc, indent=2))
    if "defaults" in parts:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        doc["defaults"] = defaults(args.sets, seeds, tmp, doc.setdefault("defaults", {}),
                                   lambda: RESULTS.write_text(json.dumps(doc, indent=2)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2))
    print(f"\n{'dataset/strategy':<44}{'accuracy':>10}{'macro_f1':>10}{'train s':>10}")
    for name, r in rows.items():
        print(f"{name:<44}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['train_seconds']:>10.1f}")
    for k, v in doc.get("throughput_img_per_s", {}).items():
        print(f"throughput {k}: {v:.1f} img/s (target fp32 >= 9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
