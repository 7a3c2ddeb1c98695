#!/usr/bin/env bash
# Create .venv and install Wren with the embedded SLM ([local]) and the test tools ([dev]).
# Safe to run again. The first run builds llama-cpp-python from source (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    .venv/bin/python -m pip install -q -e ".[local,dev,bench,ray]"
