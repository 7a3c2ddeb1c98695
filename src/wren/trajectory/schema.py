"""The parts of a run record: file names, model stats, one step, and the error for unreadable runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from wren.exceptions import WrenError

JSONL_NAME = "trajectory.jsonl"
FINAL_SUFFIX = ".traj.json"
TRAJECTORY_FORMAT = "mini-swe-agent-1.1"
KILLED_STATUS = "Killed"
"""The exit status written, by the process that watches a run, for a run whose Wren process died."""

# Where a run came from; `Run.layout` holds one of these.
WREN = "wren"  # a final `<id>.traj.json` written by Wren
WREN_JSONL = "wren-jsonl"  # only the per-step `trajectory.jsonl`: a run still going, or one that crashed
MINI_SWE_AGENT = "mini-swe-agent"  # a `*.traj.json` of mini-swe-agent 1.x or 2.x
MESSAGE_LIST = "message-list"  # a bare JSON list of messages, as the oldest mini-swe-agent files are
LAYOUTS = (WREN, WREN_JSONL, MINI_SWE_AGENT, MESSAGE_LIST)


def final_name(instance_id: str) -> str:
    """The file name of a run's final trajectory."""
    return f"{instance_id}{FINAL_SUFFIX}"


class TrajectoryError(WrenError):
    """A path holds no trajectory, or one that cannot be read."""


@dataclass(frozen=True)
class ModelStats:
    """What the model calls of a run cost."""

    instance_cost: float = 0.0
    api_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Timing:
    """When a run's steps happened (Unix seconds) and how long the model took in all."""

    started: float | None = None
    ended: float | None = None
    model_seconds: float = 0.0

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass
class Step:
    """One model reply (or one command a person typed) and the messages that answered it.

    `action`, `output` and `returncode` are what ran, where the run recorded it (Wren's per-step log,
    mini-swe-agent 2.x's message extras); None when the reply held no action that ran, or the file does
    not say.
    """

    number: int
    """1-based position among the run's steps."""
    messages: list[dict] = field(repr=False)
    """The reply first, then the observation, format error or exit message that followed it."""
    action: str | None = None
    output: str | None = None
    returncode: int | None = None
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    latency: float | None = None
    timestamp: float | None = None

    @property
    def reply(self) -> dict:
        return self.messages[0]

    @property
    def answers(self) -> list[dict]:
        """The messages after the reply."""
        return self.messages[1:]

    @property
    def exit(self) -> dict | None:
        """The exit message, when the run ended in this step."""
        return next((m for m in self.messages if m.get("role") == "exit"), None)
