#!/usr/bin/env bash
# Set everything up, then run the linter and the test suite. Tests that need ../shared/datasets skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFERLAB_QUIET=1
.venv/bin/ruff check src tests benchmarks
.venv/bin/lint-imports --no-cache  # the layering contracts in pyproject.toml: one direction of flow, no cycles
.venv/bin/python -m pytest -q --durations=15 "$@"
