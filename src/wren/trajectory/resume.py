"""Continuing a run whose process died, from its `trajectory.jsonl` and the workspace it left.

Each log line of a local run records a fingerprint of the workspace after that step (git HEAD and
a hash of everything that differs from it, or of every file outside git). A run continues from its
last complete line only when the workspace still has that line's fingerprint: a step that was
running when the process died may have changed files without being recorded, and continuing would
then build on a state the trajectory does not show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError
from wren.trajectory.schema import JSONL_NAME, KILLED_STATUS, final_name
from wren.trajectory.workspace import workspace_fingerprint


@dataclass
class ResumePoint:
    """The state of a run at the end of its last recorded step."""

    messages: list[dict]
    n_steps: int
    cost: float
    n_prefix: int


@dataclass
class SavedRun:
    """A run's log, read back to be continued."""

    point: ResumePoint
    task: str
    instance_id: str
    config: dict[str, Any]
    workspace: dict[str, str] | None
    """The fingerprint recorded with the last complete step (None: the run recorded none)."""


def read_saved_run(out_dir: str | Path) -> SavedRun:
    """The state at the end of the last complete line of `out_dir`'s trajectory.jsonl.

    A last line cut short by the process's death is dropped from the file (it never finished
    being written, so its step is run again).
    """
    out_dir = Path(out_dir)
    path = out_dir / JSONL_NAME
    if not path.is_file():
        raise ConfigError(f"--resume {out_dir}: no {JSONL_NAME} there; give the -o directory of the run")
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
    try:
        lines = [json.loads(line) for line in complete.decode().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--resume {out_dir}: {JSONL_NAME} is not a Wren run log ({e})") from None
    if not lines or lines[0].get("step") != 0 or "n_prefix" not in lines[0]:
        raise ConfigError(
            f"--resume {out_dir}: {JSONL_NAME} does not record how the run began (a run from an older "
            "Wren, or not a `wren run` log); it cannot be continued"
        )
    if len(lines) > 1 and _killed_record(lines[-1]):
        # The process died and its guard ended the log; the run itself never ended, so it goes on.
        complete = complete[: complete.rstrip(b"\n").rfind(b"\n") + 1]
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
        lines.pop()
    opening = lines[0]
    messages = [m for line in lines for m in line.get("messages") or []]
    ended = next((m for m in reversed(messages) if m.get("role") == "exit"), None)
    instance_id = str(opening.get("instance_id") or "run")
    if ended is not None or (out_dir / final_name(instance_id)).exists():
        status = ((ended or {}).get("extra") or {}).get("exit_status") or "finished"
        raise ConfigError(
            f"--resume {out_dir}: the run has already ended ({status}); there is nothing to continue"
        )
    last = lines[-1]
    cost = sum(
        float((m.get("extra") or {}).get("cost") or 0.0) for m in messages if m.get("role") == "assistant"
    )
    point = ResumePoint(
        messages=messages, n_steps=int(last.get("step") or 0), cost=cost, n_prefix=int(opening["n_prefix"])
    )
    workspace = next((line["workspace"] for line in reversed(lines) if line.get("workspace")), None)
    return SavedRun(
        point=point,
        task=str(opening.get("task") or ""),
        instance_id=instance_id,
        config=opening.get("config") or {},
        workspace=workspace,
    )


def _killed_record(line: dict) -> bool:
    """Whether `line` is the end a guard wrote for a killed run (no step of its own, one exit)."""
    messages = line.get("messages") or []
    return (
        "step" not in line
        and len(messages) == 1
        and messages[0].get("role") == "exit"
        and (messages[0].get("extra") or {}).get("exit_status") == KILLED_STATUS
    )


def check_workspace(saved: SavedRun, cwd: str | Path | None, out_dir: Path) -> None:
    """Refuse to continue when the workspace is not as the last recorded step left it."""
    if saved.workspace is None:
        raise ConfigError(
            "the run recorded no workspace fingerprint (it did not run in a local directory), so Wren "
            "cannot tell whether its workspace is as it was; start a new run instead"
        )
    now = workspace_fingerprint(cwd or ".", exclude=[out_dir])
    if now != saved.workspace:
        where = f" in {cwd}" if cwd else ""
        if now is not None and now.get("head") != saved.workspace.get("head"):
            what = f"git HEAD is {now.get('head')}, the run left {saved.workspace.get('head')}"
        else:
            what = "files differ from what the run's last recorded step left"
        raise ConfigError(
            f"the workspace{where} no longer matches the run after step {saved.point.n_steps}: {what} "
            "(the step that was running when the process died may have changed them); restore it "
            "(e.g. `git stash` the changes made since) or start a new run"
        )
