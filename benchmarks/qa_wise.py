"""One check of weight averaging after `qa adapt` (issue 14, acceptance 2), its rule fixed before the run.

With the mpnet reader (the default on CPUs with bf16 matrix units), `qa adapt` with no labels lost 1.1 F1 on
squadshifts_amazon test.json (68.24 vs 69.34 as is), where the MiniLM reader gained 0.4: the stronger reader passes
more of its synthesised cloze questions through the round-trip filter (1,191 of 2,100 vs 679) and drifts towards
matching sentences. Weight-space ensembling (WiSE-FT, Wortsman et al. 2022, "Robust fine-tuning of zero-shot
models"): the average of the weights before and after fine-tuning (their mixing coefficient 0.5, not tuned here)
keeps what the starting model knows under distribution shift and usually scores at or above both ends; it costs
no training.

Selection set: the squadshifts_amazon train.json *questions* (523). No-labels adaptation never sees them (it reads
the domain's contexts only); test.json is not looked at for the choice.

Rule, written before the run: `qa adapt` averages the adapted reader with the reader it started from (0.5 each) by
default when, on the selection set, the averaged reader's F1 >= the starting reader's F1 and >= the adapted
reader's F1. The test.json figures are then measured and reported whatever they say.

    .venv/bin/python benchmarks/qa_wise.py     # results under "wise_selection" in results/qa.json
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qa import RUNS, SHARED, _evaluate, _merge  # noqa: E402

DOMAIN = "squadshifts_amazon"
BASE = RUNS / "reader_default"
ADAPTED = RUNS / f"{DOMAIN}-no_labels"  # benchmarks/qa.py --domains squadshifts_amazon --modes no_labels (before)


def main() -> None:
    from safetensors.torch import load_file, save_file

    averaged = RUNS / f"{DOMAIN}-no_labels-wise"
    shutil.rmtree(averaged, ignore_errors=True)
    shutil.copytree(ADAPTED, averaged)
    base, adapted = load_file(str(BASE / "model.safetensors")), load_file(str(ADAPTED / "model.safetensors"))
    save_file({k: (0.5 * base[k].float() + 0.5 * v.float()).to(v.dtype) if v.is_floating_point() else v
               for k, v in adapted.items()}, str(averaged / "model.safetensors"))
    selection = SHARED / DOMAIN / "train.json"
    rows = {name: _evaluate(path, selection) for name, path in
            (("start", BASE), ("adapted", ADAPTED), ("averaged", averaged))}
    rows["adopt"] = rows["averaged"]["f1"] >= max(rows["start"]["f1"], rows["adapted"]["f1"])
    print(rows)
    _merge("wise_selection", rows)


if __name__ == "__main__":
    main()
