"""One saved run, whatever wrote it: its messages, how it ended, what it cost, and its steps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.trajectory.schema import (
    FINAL_SUFFIX,
    JSONL_NAME,
    TRAJECTORY_FORMAT,
    ModelStats,
    Step,
    Timing,
)
from wren.trajectory.steps import as_pages, split_steps


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


@dataclass
class Run:
    """A run read from disk. Build one with `wren.trajectory.read_run(path)`."""

    path: Path
    """The file it was read from."""
    layout: str
    """Which writer made it: one of `wren.trajectory.schema.LAYOUTS`."""
    messages: list[dict] = field(repr=False)
    """Every message of the run, in order (the opening, the replies, observations, the exit message)."""
    info: dict[str, Any] = field(default_factory=dict, repr=False)
    """The file's `info` mapping as written ({} when it has none)."""
    load_records: Callable[[], list[dict]] | None = field(default=None, repr=False, compare=False)
    """Reads the per-step log lines on first use (None: the run has no log)."""

    @functools.cached_property
    def records(self) -> list[dict]:
        """The lines of Wren's per-step `trajectory.jsonl` ([] for runs that have none)."""
        return list(self.load_records()) if self.load_records is not None else []

    @property
    def exit_message(self) -> dict:
        return next((m for m in reversed(self.messages) if m.get("role") == "exit"), {})

    @property
    def exit_status(self) -> str:
        """Why the run ended ('Submitted', 'LimitsExceeded', ...); '' while it has not."""
        extra = self.exit_message.get("extra") or {}
        return str(self.info.get("exit_status") or extra.get("exit_status") or "")

    @property
    def submission(self) -> str:
        extra = self.exit_message.get("extra") or {}
        return str(self.info.get("submission") or extra.get("submission") or "")

    @property
    def finished(self) -> bool:
        return bool(self.exit_status)

    @property
    def config(self) -> dict[str, Any]:
        """The config the run was started with ({} when the file does not say)."""
        config = self.info.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def replies(self) -> list[dict]:
        """The model replies that are steps (demonstrations are not)."""
        return [s.reply for s in self.steps if s.reply.get("role") == "assistant"]

    @property
    def model_stats(self) -> ModelStats:
        """The file's model stats; summed from the replies where it has none (a run that did not finish)."""
        stats = self.info.get("model_stats")
        stats = stats if isinstance(stats, dict) else {}
        if stats.get("instance_cost") is not None and stats.get("api_calls") is not None:
            # A final file: no need to read the steps (the run list reads many of these).
            return ModelStats(
                _float(stats["instance_cost"]),
                int(stats["api_calls"]),
                int(stats.get("prompt_tokens") or 0),
                int(stats.get("completion_tokens") or 0),
            )
        steps = [s for s in self.steps if s.reply.get("role") == "assistant"]
        return ModelStats(
            instance_cost=sum(s.cost for s in steps),
            api_calls=len(steps),
            prompt_tokens=sum(s.prompt_tokens for s in steps),
            completion_tokens=sum(s.completion_tokens for s in steps),
        )

    @property
    def model_name(self) -> str:
        """The model named in the config, else the one the first reply says answered it."""
        model = self.config.get("model")
        if isinstance(model, dict) and (model.get("name") or model.get("model_name")):
            return str(model.get("name") or model.get("model_name"))
        for reply in self.replies:
            if (reply.get("extra") or {}).get("model"):
                return str(reply["extra"]["model"])
        return ""

    @property
    def name(self) -> str:
        """The instance id, else a name from the path (the directory for Wren's and mini's generic file names)."""
        if self.info.get("instance_id"):
            return str(self.info["instance_id"])
        if self.path.name == JSONL_NAME:
            return self.path.parent.name
        stem = self.path.name.removesuffix(FINAL_SUFFIX).removesuffix(".json")
        return self.path.parent.name if stem in ("run", "last_mini_run") and self.path.parent.name else stem

    @property
    def demonstrations(self) -> int | None:
        demos = (self.config.get("agent") or {}).get("demonstrations") if self.config else None
        return len(demos) if isinstance(demos, list) else None

    @functools.cached_property
    def _split(self) -> tuple[list[dict], list[Step]]:
        return split_steps(self.messages, self.records, demonstrations=self.demonstrations)

    @property
    def opening(self) -> list[dict]:
        """The messages before the first step: system, demonstrations, task."""
        return self._split[0]

    @property
    def steps(self) -> list[Step]:
        return self._split[1]

    @property
    def pages(self) -> list[list[dict]]:
        """The messages as pages for display: the opening, then one page per step."""
        return as_pages(*self._split)

    @property
    def timing(self) -> Timing:
        stamps = [s.timestamp for s in self.steps if s.timestamp is not None]
        stamps += [float(r["timestamp"]) for r in self.records if isinstance(r.get("timestamp"), int | float)]
        return Timing(
            started=min(stamps) if stamps else None,
            ended=max(stamps) if stamps else None,
            model_seconds=sum(s.latency or 0.0 for s in self.steps),
        )

    def to_dict(self) -> dict[str, Any]:
        """The run in mini-swe-agent's trajectory schema (what `<id>.traj.json` holds)."""
        stats = self.model_stats
        info = {
            **self.info,
            "exit_status": self.exit_status,
            "submission": self.submission,
            "model_stats": {**(self.info.get("model_stats") or {}), **stats.__dict__},
        }
        return {"info": info, "messages": self.messages, "trajectory_format": TRAJECTORY_FORMAT}
