"""Helpers for the embedded-SLM benchmarks: a private server, and agent runs with the slm config."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.servers import free_port


@contextlib.contextmanager
def embedded_port() -> Iterator[int]:
    """A free port for the embedded server, with its own state directory; whatever server this
    state directory started there (`ensure_server`, or `wren run` itself) is stopped afterwards."""
    os.environ["WREN_HOME"] = tempfile.mkdtemp(prefix="wren-slm-bench-")
    from wren.serve.embedded import stop_server

    port = free_port()
    try:
        yield port
    finally:
        stop_server(port)


@contextlib.contextmanager
def embedded_server(*, n_ctx: int = 8192, slots: int = 1) -> Iterator[str]:
    """The bundled model on a free port with its own state directory; stopped afterwards."""
    with embedded_port() as port:
        from wren.serve.embedded import ensure_server

        yield ensure_server(port, slots=slots, n_ctx=n_ctx)


def run_slm_agent(
    api_base: str, task: str, cwd: Path, overrides: list[str] = (), *, environment: type | None = None
) -> Any:
    """One DefaultAgent run with the slm config (as `wren run` with no model) against `api_base`."""
    from wren import DefaultAgent
    from wren.config.loader import deep_merge, load_config_dict, validate
    from wren.config.schema import WrenConfig
    from wren.environments import get_environment
    from wren.models import get_model
    from wren.serve.embedded import embedded_model_config

    data = load_config_dict(list(overrides), base=("default", "slm"))

    data["model"] = deep_merge(embedded_model_config(api_base), data.get("model") or {})
    cfg = validate(WrenConfig, data)
    env = get_environment({**cfg.environment, "cwd": str(cwd)})
    if environment is not None:  # the same settings in a benchmark's own environment class
        env = environment(env.config)
    agent = DefaultAgent(get_model(cfg.model), env, config=cfg.agent)
    return agent.run(task)


def assistant_extras(result: Any) -> list[dict]:
    """The model-call records of a run (the few-shot turns carry no latency)."""
    return [
        m["extra"]
        for m in result.messages
        if m.get("role") == "assistant" and "latency" in (m.get("extra") or {})
    ]
