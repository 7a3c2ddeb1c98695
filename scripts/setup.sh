#!/usr/bin/env bash
# Create .venv and install Wren with the embedded SLM ([local]) and the test tools ([dev]).
# Safe to run again. Everything comes as prebuilt wheels (the embedded server is xllamacpp).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel
.venv/bin/python -m pip install -q -e ".[local,dev,bench,ray]"
# The training stack ([learn]) with WREN_LEARN=1 (scripts/test.sh sets it): torch first, alone, so
# that trl/peft/transformers do not pull a CUDA build. WREN_TORCH picks the torch requirement and
# WREN_TORCH_INDEX an index for it (a CPU-only index on a machine without a GPU).
if [ "${WREN_LEARN:-0}" = "1" ]; then
    .venv/bin/python -m pip install -q "${WREN_TORCH:-torch==2.13.0}" \
        ${WREN_TORCH_INDEX:+--index-url "$WREN_TORCH_INDEX"}
    .venv/bin/python -m pip install -q -e ".[learn]"
fi
