#!/usr/bin/env bash
# Create .venv and install transferlab with every dependency pinned (requirements/constraints.txt).
# torch is the CPU build (torch==2.13.0+cpu, a wheel on this kind of machine): resolving it in the same pip command
# as everything else keeps pip from pulling several GB of CUDA packages. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.transferlab-installed
want=$(cat pyproject.toml requirements/constraints.txt | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi
# Headless Chromium, for the test that opens the compare report like a person would. Optional: that test skips
# without it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "setup: could not install chromium; the report screenshot test will be skipped" >&2
fi
if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "setup: CUDA packages were installed; torch must be the CPU build (see README)" >&2
  exit 1
fi
