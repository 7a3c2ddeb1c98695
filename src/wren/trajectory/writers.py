"""Writing runs: `trajectory.jsonl` as it happens, `<id>.traj.json` at the end.

The JSONL file gets one line per step, appended and flushed, so a step costs what that step
wrote and a crash loses nothing before it. The final file uses mini-swe-agent's schema so the
tools that read mini-swe-agent runs read ours. Secret values are scrubbed from both.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wren
from wren.redact import current_redactor
from wren.trajectory.schema import JSONL_NAME, TRAJECTORY_FORMAT, final_name


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


class TrajectoryRecorder:
    """An agent hook that writes the run's trajectory into `output_dir`."""

    def __init__(
        self,
        output_dir: str | Path,
        instance_id: str = "run",
        *,
        config: dict[str, Any] | None = None,
        secrets: list[str] | tuple = (),
        task: str | None = None,
        fingerprint: Callable[[], dict[str, Any] | None] | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.instance_id = instance_id
        self.config = config or {}
        self.redact = current_redactor(secrets)
        self.jsonl_path = self.output_dir / JSONL_NAME
        self.traj_path = self.output_dir / final_name(instance_id)
        self.task = task
        self.fingerprint = fingerprint
        self._file = None

    def on_start(self, agent: Any) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._file = self.jsonl_path.open("w", encoding="utf-8")
        # What `wren run --resume` needs to continue the run if this process dies.
        opening = {"instance_id": self.instance_id, "n_prefix": getattr(agent, "n_prefix", None)}
        if self.task is not None:
            opening["task"] = self.task
        if self.config:
            opening["config"] = self.config
        self._write_line({"step": 0, "messages": agent.messages, **opening, "timestamp": time.time()})

    def on_resume(self, agent: Any) -> None:
        """Append to the log of a run that is being continued (its lines so far stay as they are)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._file = self.jsonl_path.open("a", encoding="utf-8")
        self._write_line({"step": agent.n_steps, "messages": [], "resumed": True, "timestamp": time.time()})

    def _write_line(self, record: dict) -> None:
        assert self._file is not None
        if self.fingerprint is not None:
            workspace = self.fingerprint()
            if workspace is not None:
                record = {**record, "workspace": workspace}
        self._file.write(_dumps(self.redact.data(record)) + "\n")
        self._file.flush()

    def on_step(self, agent: Any, record: dict) -> None:
        if self._file is None:
            self.on_start(agent)
        self._write_line({**record, "timestamp": time.time()})

    def on_finish(self, agent: Any, result: Any) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        model = agent.model
        data = {
            "info": {
                "exit_status": result.exit_status,
                "submission": result.submission,
                "model_stats": {
                    "instance_cost": result.cost,
                    "api_calls": result.n_steps,
                    "prompt_tokens": getattr(model, "prompt_tokens", 0),
                    "completion_tokens": getattr(model, "completion_tokens", 0),
                },
                "config": self.config,
                "wren_version": wren.__version__,
                "mini_version": wren.__version__,
                "instance_id": self.instance_id,
            },
            "messages": result.messages,
            "trajectory_format": TRAJECTORY_FORMAT,
        }
        tmp = self.traj_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(self.redact.data(data), indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        os.replace(tmp, self.traj_path)
