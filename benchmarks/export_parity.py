"""Export parity on real data (issue 15, acceptance 1): for each exportable strategy, the exported model run by
the copyable runtime (in a process where torch, scikit-learn, transformers, scipy and transferlab cannot be
imported) against `transferlab predict` on the same inputs: top-1 agreement and the largest probability difference.

    .venv/bin/python benchmarks/export_parity.py [--models DIR] [--only headless bow ...]

Images: trained on hymenoptera `train/`, compared on `val/` (153 images). Texts: trained on sst2 `train.csv`,
compared on the whole `test.csv` (1,821 sentences). Every strategy trains with its defaults except the two
fine-tuning ones, which are cut to one epoch (``finetune``) and one epoch on the first 400 training sentences
(``text_finetune``, whose defaults take tens of minutes here): parity is a property of the export, not of how long
the network trained. Models are kept in --models (default: a temporary folder) and reused when present.

Acceptance: >= 99.9% of top-1 labels agree and every probability within 1e-4.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, TRANSFERLAB, dataset, print_table, save_results  # noqa: E402

STRATEGIES = {  # name -> (modality, extra train arguments)
    "headless": ("image", []),
    "headless_ensemble": ("image", []),
    "frozen_head": ("image", []),
    "finetune": ("image", ["--param", "epochs=1"]),
    "bow": ("text", []),
    "text_headless": ("text", []),
    "text_finetune": ("text", ["--param", "epochs=1"]),
}

RUNTIME_SCRIPT = textwrap.dedent("""
    import json, sys, time
    BLOCKED = ("torch", "sklearn", "transformers", "transferlab", "scipy", "safetensors")
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    export_dir, inputs_file, out_file = sys.argv[1:4]
    sys.path.insert(0, export_dir)
    from transferlab_runtime import load
    inputs = json.load(open(inputs_file))
    model = load(export_dir)
    t = time.perf_counter()
    preds = model.predict(inputs, top_k=len(model.labels))
    seconds = time.perf_counter() - t
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    json.dump({"predictions": preds, "seconds": seconds, "leaked": leaked}, open(out_file, "w"))
""")


def inputs_for(modality: str) -> list[str]:
    if modality == "image":
        val = dataset("hymenoptera")
        return sorted(glob.glob(str(val / "val" / "*" / "*"))) if val else []
    sst2 = dataset("sst2")
    if not sst2:
        return []
    with open(sst2 / "test.csv", newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def train(name: str, modality: str, extra: list[str], models: Path) -> Path:
    out = models / name
    if (out / "config.json").exists():
        return out
    if modality == "image":
        data = str(dataset("hymenoptera"))
    else:
        data = str(dataset("sst2") / "train.csv")
        if name == "text_finetune":
            small = models / "sst2_train_400.csv"
            with open(data, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))[:401]
            with open(small, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)
            data = str(small)
    subprocess.run([TRANSFERLAB, "--quiet", "train", data, "--strategy", name, *extra, "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=None, help="keep (and reuse) trained models here")
    parser.add_argument("--only", nargs="*", default=list(STRATEGIES), choices=list(STRATEGIES))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "src"))
    from transferlab.model import Model

    models = args.models or Path(tempfile.mkdtemp(prefix="export_parity_"))
    models.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.only:
        modality, extra = STRATEGIES[name]
        inputs = inputs_for(modality)
        if not inputs:
            continue
        model_dir = train(name, modality, extra, models)
        export_dir = models / f"{name}_onnx"
        t = time.perf_counter()
        subprocess.run([TRANSFERLAB, "--quiet", "export", str(model_dir), "--out", str(export_dir)], check=True,
                       stderr=subprocess.DEVNULL)
        export_seconds = time.perf_counter() - t
        t = time.perf_counter()
        expected = Model.load(model_dir).predict(inputs, top_k=10**6)
        predict_seconds = time.perf_counter() - t
        inputs_file, out_file = models / f"{name}_inputs.json", models / f"{name}_runtime.json"
        inputs_file.write_text(json.dumps(inputs))
        subprocess.run([sys.executable, "-c", RUNTIME_SCRIPT, str(export_dir), str(inputs_file), str(out_file)],
                       check=True, cwd=models)
        result = json.loads(out_file.read_text())
        got = result["predictions"]
        agree, max_diff, errors_match = 0, 0.0, True
        for e, g in zip(expected, got, strict=True):
            if ("error" in e) != ("error" in g):
                errors_match = False
                continue
            if "error" in e:
                continue
            agree += e["label"] == g["label"]
            max_diff = max(max_diff, max(abs(p - g["probabilities"][k]) for k, p in e["probabilities"].items()))
        usable = sum("error" not in e for e in expected)
        size_mb = sum(p.stat().st_size for p in export_dir.iterdir()) / 1e6
        rows.append({"strategy": name, "data": "hymenoptera val" if modality == "image" else "sst2 test",
                     "inputs": len(inputs), "top1_agreement": agree / max(usable, 1),
                     "max_abs_prob_diff": float(max_diff), "max_diff": f"{max_diff:.1e}", "errors_match": errors_match,
                     "imports_blocked_ok": not result["leaked"], "export_s": round(export_seconds, 1),
                     "export_mb": round(size_mb, 1), "predict_s": round(predict_seconds, 1),
                     "runtime_s": round(result["seconds"], 1),
                     "ok": agree / max(usable, 1) >= 0.999 and max_diff <= 1e-4 and errors_match
                     and not result["leaked"]})
        print(json.dumps(rows[-1]), flush=True)
    print()
    print_table(rows, ["strategy", "data", "inputs", "top1_agreement", "max_diff", "errors_match",
                       "imports_blocked_ok", "export_mb", "predict_s", "runtime_s", "ok"])
    save_results("export_parity", {"rows": rows, "max_abs_prob_diff_all": float(np.max([r["max_abs_prob_diff"]
                                                                                         for r in rows] or [0]))})


if __name__ == "__main__":
    main()
