"""Text encoder speed: sentences per second of every registered text encoder, embedding sst2 test sentences with a cold
feature cache (nothing embedded before), the model already loaded and (for transformers) its ONNX graph already
exported; best of 3, each run in a fresh cache folder. The default backend is measured (``auto``: bfloat16 on a CPU with
AMX, else ONNX Runtime float32; the row says which) and ONNX Runtime float32 beside it. The load + export time is
reported apart. For the transformer encoders the same sentences are also embedded by sentence-transformers (the
reference: speed and the minimum cosine / maximum absolute difference of our vectors against its
``encode(normalize_embeddings=True)``) and by our PyTorch path (``backend="torch"``). The speeds land beside the image
backbones' in ``src/transferlab/resources/backbone_speed.json``, which ``transferlab models`` shows.

    .venv/bin/python benchmarks/text_encoder_speed.py [--sentences 500]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, dataset, print_table, save_results  # noqa: E402
from transferlab import runtime  # noqa: E402
from transferlab._torch import set_torch_threads  # noqa: E402
from transferlab.backbones import list_backbones  # noqa: E402
from transferlab.features import extract_features  # noqa: E402

SPEED_FILE = ROOT / "src" / "transferlab" / "resources" / "backbone_speed.json"


def _rate(fn, texts: list[str], repeats: int) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(texts)
        times.append(time.perf_counter() - t)
    return len(texts) / min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = dataset("sst2")
    if data is None:
        return
    with open(data / "test.csv", encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)][: args.sentences]
    set_torch_threads()
    rows = []
    for spec in list_backbones("text"):
        if not spec.is_installed():
            print(f"{spec.name}: not installed, skipped ({spec.how_to_add})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            warm = Path(tmp) / "warm"
            with runtime.settings(cache_directory=warm, progress=False):
                t = time.perf_counter()
                extract_features(spec.name, ["warm-up: the model loads here", "and a second sentence"])
                load_s = time.perf_counter() - t
            times = []
            for i in range(args.repeats):
                cold = Path(tmp) / f"cold{i}"
                if (warm / "onnx").is_dir():  # the exported graph, not the embeddings
                    shutil.copytree(warm / "onnx", cold / "onnx")
                with runtime.settings(cache_directory=cold, progress=False):
                    t = time.perf_counter()
                    out = extract_features(spec.name, texts)
                    times.append(time.perf_counter() - t)
                    ours = out.arrays["features"]
                    assert ours.shape == (len(texts), spec.feature_dim)
            row = {"encoder": spec.name, "sentences": len(texts), "load_seconds": round(load_s, 2),
                   "best_seconds": round(min(times), 3), "sentences_per_second": round(len(texts) / min(times), 1)}
            if spec.kind == "transformer":
                from sentence_transformers import SentenceTransformer

                encoder = spec.encoder()
                row["precision"] = encoder.precision  # what the default ("auto") embedded with above
                encoder.use_cache, encoder.backend = False, "torch"
                row["torch_per_second"] = round(_rate(encoder.embed, texts, 1)[0], 1)
                encoder.backend = "onnx"
                row["onnx_float32_per_second"] = round(_rate(encoder.embed, texts, 2)[0], 1)
                reference = SentenceTransformer(encoder.folder, device="cpu")
                st_rate, ref = _rate(lambda x, m=reference: m.encode(x, batch_size=32, normalize_embeddings=True),
                                     texts, 1)
                row["sentence_transformers_per_second"] = round(st_rate, 1)
                row["min_cosine_vs_reference"] = float((ours * ref).sum(1).min())
                row["max_abs_diff_vs_reference"] = float(abs(ours - ref).max())
            rows.append(row)
    print_table(rows, ["encoder", "sentences", "load_seconds", "precision", "sentences_per_second",
                       "onnx_float32_per_second", "torch_per_second",
                       "sentence_transformers_per_second", "min_cosine_vs_reference", "max_abs_diff_vs_reference"])
    save_results("text_encoder_speed", {"sentences": len(texts), "repeats": args.repeats, "rows": rows})
    speeds = json.loads(SPEED_FILE.read_text()) if SPEED_FILE.exists() else {}
    for r in rows:
        speeds[r["encoder"]] = {"sentences_per_second": r["sentences_per_second"]}
        if r.get("precision") == "bf16":  # what a CPU without bf16 matrix units gets: ONNX Runtime, float32
            speeds[r["encoder"]]["float32_sentences_per_second"] = r["onnx_float32_per_second"]
    SPEED_FILE.write_text(json.dumps(speeds, indent=2) + "\n")


if __name__ == "__main__":
    main()
