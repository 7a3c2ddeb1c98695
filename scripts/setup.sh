#!/usr/bin/env bash
# Create .venv and install Wren with the embedded SLM ([local]) and the test tools ([dev]).
# Safe to run again. Everything comes as prebuilt wheels (the embedded server is xllamacpp).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel
.venv/bin/python -m pip install -q -e ".[local,dev,bench,ray]"
