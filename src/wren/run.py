"""One agent run with everything around it: model, trajectory, program id, release."""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wren.agents.default import AgentResult, DefaultAgent
from wren.config.schema import WrenConfig
from wren.environments.guard import run_done, watch_run
from wren.redact import register_secret
from wren.trajectory import TrajectoryRecorder
from wren.trajectory.workspace import workspace_fingerprint

if TYPE_CHECKING:
    from wren.trajectory.resume import SavedRun

logger = logging.getLogger("wren.run")


def new_program_id(instance_id: str) -> str:
    """A program id unique to one run of `instance_id`."""
    return f"{instance_id}-{uuid.uuid4().hex[:12]}"


def _release_request(model: Any) -> dict[str, Any] | None:
    """The request release_at_gateway sends, for a guard to send if this process is killed."""
    config = getattr(model, "config", None)
    api_base = getattr(config, "api_base", None)
    program_id = getattr(model, "program_id", None)
    if not api_base or not program_id:
        return None
    try:
        from wren.gateway.client import gateway_root
    except ImportError:
        return None
    headers = {"Content-Type": "application/json"}
    key = config.resolved_api_key() if hasattr(config, "resolved_api_key") else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return {
        "url": gateway_root(api_base) + "/programs/release",
        "body": {"program_id": program_id},
        "headers": headers,
    }


def release_at_gateway(model: Any) -> None:
    """Tell the gateway behind `model` that its program ended (`POST /programs/release`).

    Sent whatever the server's `/health` says, so program-aware gateways other than Wren's release
    too; any other server answers 404, which is ignored (the call never raises).
    """
    config = getattr(model, "config", None)
    api_base = getattr(config, "api_base", None)
    program_id = getattr(model, "program_id", None)
    if not api_base or not program_id:
        return
    try:
        from wren.gateway.client import release_program
    except ImportError:
        return
    key = config.resolved_api_key() if hasattr(config, "resolved_api_key") else None
    release_program(api_base, program_id, timeout=2.0, api_key=key)


def _fingerprinter(config: WrenConfig, env: Any, output_dir: Path) -> Callable[[], dict | None] | None:
    """The workspace fingerprint of a run whose commands run in a directory of this machine."""
    kind = str(config.environment.get("environment_class") or "local")
    if kind not in ("local", "wren.environments.local.LocalEnvironment"):
        return None
    cwd = getattr(getattr(env, "config", None), "cwd", None) or config.environment.get("cwd") or os.getcwd()
    return functools.partial(workspace_fingerprint, cwd, [output_dir])


def run_agent(
    config: WrenConfig,
    task: str,
    *,
    env: Any,
    model: Any = None,
    output_dir: str | Path,
    instance_id: str = "run",
    hooks: list[Any] | tuple = (),
    agent_class: type = DefaultAgent,
    resume_from: SavedRun | None = None,
    **agent_kwargs: Any,
) -> AgentResult:
    """Run `task` to its end, recording the trajectory in `output_dir` and releasing the program id.

    With `resume_from` (wren.trajectory.resume.read_saved_run), continue that run, appending to its log. A run
    in a local directory records its workspace's fingerprint with every step, so it can be resumed.
    """
    from wren.models import get_model

    model = model if model is not None else get_model(config.model)
    model.program_id = new_program_id(instance_id)
    model_config = getattr(model, "config", None)
    secrets = model_config.secret_values() if hasattr(model_config, "secret_values") else []
    register_secret(*secrets)  # the console printers scrub them too
    public = {
        "agent": config.agent.model_dump(),
        "model": model_config.public_dump() if hasattr(model_config, "public_dump") else {},
        "environment": {k: v for k, v in config.environment.items() if k != "env"},
        "agent_type": f"{agent_class.__module__}.{agent_class.__name__}",
        "program_id": model.program_id,
    }
    recorder = TrajectoryRecorder(
        output_dir, instance_id, config=public, secrets=secrets, task=task,
        fingerprint=_fingerprinter(config, env, Path(output_dir)),
    )  # fmt: skip
    agent = agent_class(model, env, config=config.agent, hooks=[recorder, *hooks], **agent_kwargs)
    if resume_from is not None:
        agent.resume_from = resume_from.point
    # Should this process be killed outright, its guard ends the trajectory with status Killed and
    # releases the program.
    watch_run(recorder.jsonl_path, _release_request(model))
    try:
        return agent.run(task)
    finally:
        run_done(recorder.jsonl_path)
        release_at_gateway(model)
