"""`wren gateway` as a user starts it: the command's own defaults never override YAML or `-c`."""

from __future__ import annotations

import re
import subprocess
import sys


def _ready_line(*args: str) -> str:
    """Start the gateway, read its ready line (the handshake), stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wren.cli.main", "gateway", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # log lines come first
            if "listening on" in line:
                return line
        raise AssertionError(f"the gateway exited ({proc.wait()}) without a ready line")
    finally:
        proc.kill()
        proc.wait(30)


def test_config_overrides_are_not_replaced_by_option_defaults(scripted_server, tmp_path):
    backend = scripted_server([]).url
    yaml_file = tmp_path / "gateway.yaml"
    yaml_file.write_text("gateway:\n  policy: least-loaded\n  port: 0\n")
    line = _ready_line("-b", backend, "-c", "port=0", "-c", "policy=round-robin")
    assert "(round-robin;" in line, line
    assert not re.search(r":8100/", line), line
    line = _ready_line("-b", backend, "-c", str(yaml_file))
    assert "(least-loaded;" in line and not re.search(r":8100/", line), line


def test_options_the_user_gives_win_over_config(scripted_server, tmp_path):
    backend = scripted_server([]).url
    line = _ready_line("-b", backend, "-c", "policy=round-robin", "--policy", "least-loaded", "--port", "0")
    assert "(least-loaded;" in line, line
