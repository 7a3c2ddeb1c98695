"""`wren run` through the gateway: one program per run, released when the run ends, whatever the end."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SUBMIT, bash
from tests.test_cli_run import wren
from wren.gateway.app import GatewayThread
from wren.gateway.config import GatewayConfig


@pytest.fixture
def gateway_in_front_of(scripted_server):
    gateways = []

    def start(script):
        backend = scripted_server(script)
        g = GatewayThread(GatewayConfig(backends=[backend.url], port=0)).start()
        gateways.append(g)
        return g, backend

    yield start
    for g in gateways:
        g.stop()


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        ([bash("cat calc.py"), SUBMIT], "Submitted", 0),
        ([bash("true")], "LimitsExceeded", 1),
        ([bash("true"), {"status": 401, "error": "bad key"}], "PermanentModelError", 1),
    ],
)
def test_each_run_is_one_program_released_at_its_end(
    gateway_in_front_of, buggy_repo, tmp_path, script, status, code
):
    gateway, backend = gateway_in_front_of(script)
    proc = wren("run", "-t", "t", "-m", "openai/scripted-model", "-c", f"model.api_base={gateway.url}",
                "-c", "agent.step_limit=3", "--cwd", str(buggy_repo), "-o", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == code and status in proc.stdout, proc.stdout + proc.stderr
    ids = {r["headers"].get("X-Program-Id") for r in backend.requests}
    assert ids == {None}  # the gateway strips the program id before forwarding
    programs = httpx.get(gateway.base + "/programs").json()
    assert programs["count"] == 0, programs
    metrics = httpx.get(gateway.base + "/metrics").text
    released = [line for line in metrics.splitlines() if line.startswith("wren_gateway_releases_total{")]
    assert released and sum(float(line.rsplit(" ", 1)[1]) for line in released) == 1.0, released


def test_runs_carry_the_program_id_in_the_body_and_release_whatever_the_server(
    scripted_server, buggy_repo, tmp_path
):
    # A plain OpenAI-compatible server, not a Wren gateway: other program-aware gateways read the id
    # from the body and release on POST /programs/release, so both are sent anyway.
    backend = scripted_server([bash("cat calc.py"), SUBMIT])
    proc = wren("run", "-t", "t", "-m", "openai/scripted-model", "-c", f"model.api_base={backend.url}",
                "-c", "agent.step_limit=3", "--cwd", str(buggy_repo), "-o", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [r for r in backend.requests if r["path"].endswith("/chat/completions")]
    pid = calls[0]["headers"]["X-Program-Id"]
    assert pid and all(r["body"]["program_id"] == pid for r in calls)
    assert [r["body"] for r in backend.requests if r["path"] == "/programs/release"] == [{"program_id": pid}]
