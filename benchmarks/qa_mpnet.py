"""One CPU check of all-mpnet-base-v2 as the reader's body (issue 14, acceptance 1), its rule fixed before the run.

The default reader (MiniLM, 3 epochs, float32) scores F1 62.3 on test.json (target 63 within 30 min) and 56.97 on
the selection set (4,000 questions of train_full_subset, other articles). A third epoch or a 4th did not close the
gap: the 6-layer, 384-wide body is the limit. mpnet (12 layers, 768 wide, ~8x the compute per token) costs ~2 h per
epoch in float32 on an AVX2 CPU, but the CPU now lent (a KVM Xeon) has bfloat16 matrix units (AMX): a bf16
step measured ~19 min per epoch of train.json here (240 questions timed). So: one epoch, bf16 autocast training.

Parameters, chosen before the run from the usual BERT-base SQuAD recipe, not tuned: ``lr=5e-5`` (the top of BERT's
{2,3,5}e-5, as there is one epoch only), head ``1e-3`` as for MiniLM, batch 8, no encoder dropout, frozen word
embeddings (as the default).

Rule, written before the run: adopt mpnet as the reader's default body *on CPUs with bf16 matrix units* when it
(a) trains in <= 28 min on these 2 cores and (b) reaches selection-set F1 >= 56.97 + 0.5 = 57.5. test.json is
evaluated afterwards and reported whatever it says. CPUs without AMX keep MiniLM (mpnet would take hours there).

    .venv/bin/python benchmarks/qa_mpnet.py       # results under "candidate_mpnet_bf16" in results/qa.json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qa import check_candidate  # noqa: E402

PARAMS = {"backbone": "mpnet", "bf16": True, "epochs": 1, "lr": 5e-5, "head_lr": 1e-3, "body_dropout": 0.0}
SELECTION_F1_TO_BEAT = 56.97 + 0.5
MAX_TRAIN_MINUTES = 28


def main() -> None:
    from transferlab._torch import native_bf16

    if not native_bf16():
        raise SystemExit("this CPU has no bf16 matrix units (AMX): an mpnet reader would train for hours here")
    check_candidate("candidate_mpnet_bf16", PARAMS, max_minutes=MAX_TRAIN_MINUTES,
                    selection_f1_to_beat=SELECTION_F1_TO_BEAT)


if __name__ == "__main__":
    main()
