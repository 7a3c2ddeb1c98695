"""Running a repository's pytest suite: the test command, and one fork server per repository copy."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError, WrenError

SERVER_SCRIPT = Path(__file__).with_name("pytest_server.py")
DEFAULT_PYTEST_ARGS = ["-rA", "-p", "no:cacheprovider"]
# Our own runs: no cache writes, no random order, little terminal output and no tracebacks printed
# (failures are recorded from the exceptions themselves; formatting them costs more than most
# tests take). Installed plugins are imported before pytest starts (see pytest_server), so it may
# not rewrite their asserts.
RUN_ARGS = [
    *("-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--tb=no"),
    *("-W", "ignore::pytest.PytestAssertRewriteWarning"),
]
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^(.*/)?python[0-9.]*$")


class SynthError(WrenError):
    """Task synthesis cannot go on: the repository, its tests or the run environment is not usable."""


@dataclass(frozen=True)
class TestCommand:
    """A pytest invocation: environment assignments and pytest's arguments."""

    env: dict[str, str]
    args: list[str]

    def shell(self) -> str:
        """The command as a task's `test_cmd` (run in the repository root by the eval harness)."""
        parts = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*parts, "python", "-m", "pytest", *(shlex.quote(a) for a in self.args)])


def parse_test_command(command: str) -> TestCommand:
    """Read `[VAR=value ...] (python -m pytest | pytest) [args]`; anything else is a ConfigError."""
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise ConfigError(f"test command {command!r}: {e}") from e
    env: dict[str, str] = {}
    while words and _ENV_ASSIGNMENT.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if words[:1] and words[0] in ("pytest", "py.test") or words[0:1] and words[0].endswith("/pytest"):
        return TestCommand(env, words[1:])
    if len(words) >= 3 and _PYTHON.match(words[0]) and words[1:3] == ["-m", "pytest"]:
        return TestCommand(env, words[3:])
    raise ConfigError(
        f"test command {command!r} must run pytest: `[VAR=value ...] python -m pytest [args]` or `pytest [args]`"
    )


def default_test_command(root: Path) -> TestCommand:
    """`python -m pytest -rA -p no:cacheprovider`, with `PYTHONPATH=src` for a src layout."""
    env: dict[str, str] = {}
    src = root / "src"
    if src.is_dir() and any((p / "__init__.py").is_file() or p.suffix == ".py" for p in src.iterdir()):
        env["PYTHONPATH"] = "src"
    return TestCommand(env, list(DEFAULT_PYTEST_ARGS))


def server_environ(
    workdir: Path, command: TestCommand, base: Mapping[str, str], pycache: Path | None = None
) -> dict[str, str]:
    """The variables a pytest server in `workdir` runs with: `base` and the command's own."""
    env = dict(base)
    for key, value in command.env.items():
        if key == "PYTHONPATH":
            # Absolute, so module paths (and traced file names) do not depend on the cwd.
            value = os.pathsep.join(str(workdir / p) for p in value.split(os.pathsep) if p)
            if base.get("PYTHONPATH"):
                value += os.pathsep + base["PYTHONPATH"]
        env[key] = value
    env.pop("PYTEST_ADDOPTS", None)
    # Byte-code caching matters for speed (each run imports the package and its tests again);
    # it is safe because every rewrite of a source file gets a new mtime (see Workspace).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


@dataclass
class RunResult:
    """What one pytest run did."""

    status: str
    """done, timeout or crashed."""
    elapsed: float
    exit_code: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    collect_errors: list[dict[str, str]] = field(default_factory=list)
    subtests: list[str] = field(default_factory=list)
    lines: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    outside: dict[str, list[int]] = field(default_factory=dict)
    log: str = ""

    def passed(self, nodeid: str) -> bool:
        return self.outcomes.get(nodeid) == "passed"


class PytestServer:
    """A long-lived runner in one repository copy; each `run` forks a fresh pytest child."""

    _ids = itertools.count()

    def __init__(
        self,
        python: str,
        workdir: Path,
        command: TestCommand,
        scratch: Path,
        *,
        own_packages: frozenset[str] = frozenset(),
        pycache: Path | None = None,
        environ: dict[str, str] | None = None,
    ):
        self.workdir = Path(workdir)
        self.command = command
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.python = python
        # `environ`: the variables the tests may see (None: this process's).
        self.environ = server_environ(
            self.workdir, command, os.environ if environ is None else environ, pycache
        )
        self._stderr = open(self.scratch / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
        try:
            self.proc = subprocess.Popen(
                [python, str(SERVER_SCRIPT), "--no-preload", ",".join(sorted(own_packages))],
                cwd=self.workdir,
                env=self.environ,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as e:
            self._stderr.close()
            raise SynthError(f"cannot start {python}: {e}") from e
        self._buffer = b""

    def _server_log(self) -> str:
        try:
            return (self.scratch / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _read_reply(self, deadline: float) -> dict[str, Any]:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SynthError(f"the pytest server in {self.workdir} stopped answering")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SynthError(
                    f"the pytest server in {self.workdir} exited (does this Python have pytest?):\n"
                    + self._server_log()
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def run(
        self,
        *,
        select_ids: list[str] | None = None,
        trace: list[str] | None = None,
        timeout: float = 600.0,
        keep_log: bool = False,
        extra_args: list[str] | None = None,
    ) -> RunResult:
        """Run the suite (or only `select_ids`); `trace` lists source files whose lines to record per test."""
        n = next(self._ids)
        result_path = self.scratch / f"run-{n}.json"
        log_path = self.scratch / f"run-{n}.log"
        request = {
            "args": [*self.command.args, *RUN_ARGS, *(extra_args or [])],
            "result": str(result_path),
            "log": str(log_path),
            "timeout": timeout,
            "select": select_ids,
            "trace": trace,
        }
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise SynthError(f"the pytest server in {self.workdir} is gone: {e}\n{self._server_log()}") from e
        reply = self._read_reply(time.monotonic() + timeout + 120)
        result = RunResult(
            status=reply["status"], elapsed=reply["elapsed"], exit_code=reply.get("exit_code", 0)
        )
        if result_path.exists():
            data = json.loads(result_path.read_text())
            result.exit_code = data.get("exit_code", 0)
            result.outcomes = data.get("outcomes", {})
            result.durations = data.get("durations", {})
            result.failures = data.get("failures", {})
            result.collect_errors = data.get("collect_errors", [])
            result.subtests = data.get("subtests", [])
            result.lines = data.get("lines", {})
            result.outside = data.get("outside", {})
            result_path.unlink()
        if keep_log or result.status != "done":
            try:
                result.log = log_path.read_text(errors="replace")[-20000:]
            except OSError:
                result.log = ""
        log_path.unlink(missing_ok=True)
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._stderr.close()
