#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite. Docker tests need a running engine
# (CI starts one with .ci/docker_setup.sh); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
WREN_LEARN="${WREN_LEARN:-1}" bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -rs "$@"
