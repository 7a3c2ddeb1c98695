#!/usr/bin/env bash
# Wren's main job on the embedded default: one `wren run` with the bundled Gemma-3-270M, no keys.
# Usage: scripts/demo.sh ["task text"]  (runs in a fresh temporary git repository)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work="$(mktemp -d)"
git -C "$work" init -q
echo "hello world" > "$work/README.md"
task="${1:-Create a file named notes.txt containing the word hello.}"
exec .venv/bin/wren run --yolo -t "$task" --cwd "$work" -c agent.step_limit=8 -o "$work/.wren-run"
