#!/usr/bin/env bash
# Set everything up, then train and evaluate an image classifier on a dataset that ships inside an installed
# package (scikit-learn's handwritten digits, written out as a folder of PNGs per class), predict with it, and,
# where ../shared/datasets/hymenoptera exists, do the same on ants vs bees.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
TL=.venv/bin/transferlab
work=${DEMO_DIR:-runs/demo}
mkdir -p "$work"
$TL example-data digits --out "$work/digits"
$TL train "$work/digits" --out "$work/digits-model"
$TL predict "$work/digits-model" "$work/digits/7/$(ls "$work/digits/7" | head -n 1)"
if [ -d ../shared/datasets/hymenoptera ]; then
  $TL train ../shared/datasets/hymenoptera --out "$work/ants-bees"
  $TL evaluate "$work/ants-bees" ../shared/datasets/hymenoptera
fi
