"""Shared fixtures: scripted OpenAI-compatible servers and throwaway git repositories."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers.git_repo import make_git_repo
from tests.peers.openai_server import ScriptedOpenAIServer


def pytest_configure(config: pytest.Config) -> None:
    # A suite started as a background job of a script (`cmd &` without job control) inherits
    # SIGINT ignored, and so would every process it starts; the Ctrl-C tests need Ctrl-C to arrive
    # as it does at a terminal. A handled signal is reset to the default in children at exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedOpenAIServer]]:
    """Start scripted servers on 127.0.0.1; all are stopped after the test."""
    servers: list[ScriptedOpenAIServer] = []

    def start(script: list, **kwargs) -> ScriptedOpenAIServer:
        server = ScriptedOpenAIServer(script, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


BUGGY_CALC = "def add(a, b):\n    return a - b\n"
CALC_TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


@pytest.fixture
def buggy_repo(tmp_path: Path) -> Path:
    """A git repo whose `add` subtracts, with a test that catches it."""
    return make_git_repo(tmp_path / "repo", {"calc.py": BUGGY_CALC, "test_calc.py": CALC_TEST})


def bash(command: str, thought: str = "Next step.") -> str:
    """A well-formed model reply holding `command`."""
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```"


SUBMIT = bash("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff", "Done, submitting.")
