#!/usr/bin/env bash
# Install (scripts/setup.sh), set up what the environment tests need, and run the whole test suite;
# extra arguments go to pytest.
#
# As root (or with password-less sudo) this runs .ci/docker_setup.sh first: it installs docker.io,
# bubblewrap and debootstrap from Debian, starts a Docker engine and builds the small test image, so
# the docker and sandbox tests run instead of being skipped. Each step is skipped when already done.
# WREN_NO_SYSTEM_SETUP=1 leaves the system alone (those tests then skip where nothing is there).
set -euo pipefail
cd "$(dirname "$0")/.."
WREN_LEARN="${WREN_LEARN:-1}" bash scripts/setup.sh
if [ "${WREN_NO_SYSTEM_SETUP:-0}" != 1 ]; then
    setup=()
    if [ "$(id -u)" = 0 ]; then
        setup=(bash .ci/docker_setup.sh)
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        setup=(sudo -n bash .ci/docker_setup.sh)
    fi
    if [ ${#setup[@]} -gt 0 ]; then
        "${setup[@]}" || echo "test.sh: system setup failed; the docker and sandbox tests that need it will skip" >&2
    else
        echo "test.sh: not root and no password-less sudo: the docker and sandbox tests skip unless an engine," \
             "its test image and bubblewrap are already here (WREN_NO_SYSTEM_SETUP=1 silences this)" >&2
    fi
fi
exec .venv/bin/python -m pytest -q -rs "$@"
