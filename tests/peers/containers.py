"""What the docker tests need: the image that .ci/docker_setup.sh builds, or a reason to skip."""

from __future__ import annotations

import os
import subprocess

import pytest

TEST_IMAGE = os.environ.get("WREN_TEST_IMAGE", "wren-test-python:bookworm")


def docker_engine_reachable() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_docker_image() -> str:
    """Skip when no docker engine answers; fail (not skip) when it answers but the image is missing."""
    if not docker_engine_reachable():
        pytest.skip("no docker engine reachable (`docker info` failed); run .ci/docker_setup.sh to start one")
    probe = subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.fail(f"docker engine is up but image {TEST_IMAGE!r} is missing; run .ci/docker_setup.sh")
    return TEST_IMAGE


def wren_containers(label_pid: int | None = None) -> list[str]:
    """Names of containers (running or not) that Wren started, optionally only those of one process."""
    label = f"wren.pid={label_pid}" if label_pid is not None else "wren=1"
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in out.stdout.split() if line]
