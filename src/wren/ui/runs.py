"""Finding saved runs and summarising them: Wren's and mini-swe-agent's trajectories alike.

A run is a `*.traj.json` file, or a `trajectory.jsonl` in a directory that has no final file yet (a run
still going, or one that crashed). Batch directories hold one sub-directory per instance.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.exceptions import WrenError


class TrajectoryError(WrenError):
    """A path holds no trajectory, or one that cannot be read."""


@dataclass
class RunSummary:
    """What the run list shows of one run."""

    path: Path
    name: str
    exit_status: str
    cost: float
    steps: int
    model: str = ""
    submission: str = ""
    error: str = ""
    messages: list[dict] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.exit_status or 'unfinished'})"


def find_trajectories(path: str | Path) -> list[Path]:
    """The trajectory files at `path`: the file itself, or every run found under a directory."""
    path = Path(path)
    if not path.exists():
        raise TrajectoryError(f"{path} does not exist")
    if path.is_file():
        return [path]
    finals = sorted(path.rglob("*.traj.json"))
    have_final = {p.parent for p in finals}
    partial = sorted(p for p in path.rglob("trajectory.jsonl") if p.parent not in have_final)
    found = sorted(finals + partial, key=lambda p: str(p))
    if not found:
        raise TrajectoryError(f"no trajectories (*.traj.json or trajectory.jsonl) under {path}")
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".jsonl":
            from wren.trajectory import load_trajectory

            return load_trajectory(path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrajectoryError(f"cannot read {path}: {e}") from e
    if isinstance(data, list):  # the oldest mini-swe-agent files are a bare message list
        return {"info": {}, "messages": data}
    if not isinstance(data, dict) or not isinstance(data.get("messages", []), list):
        raise TrajectoryError(f"{path} is not a trajectory (no `messages` list)")
    return data


def _model_name(config: dict[str, Any]) -> str:
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        return ""
    return str(model.get("name") or model.get("model_name") or "")


def _run_name(path: Path, info: dict[str, Any]) -> str:
    if info.get("instance_id"):
        return str(info["instance_id"])
    if path.name == "trajectory.jsonl":
        return path.parent.name
    stem = path.name.removesuffix(".traj.json").removesuffix(".json")
    # Wren names single runs "run" and mini-swe-agent batch files after their directory: prefer the directory.
    return path.parent.name if stem in ("run", "last_mini_run") and path.parent.name else stem


def load_run(path: str | Path, *, keep_messages: bool = True) -> RunSummary:
    """The summary of one trajectory file, with its messages unless `keep_messages` is False."""
    path = Path(path)
    data = _read(path)
    info = data.get("info") or {}
    messages = data.get("messages") or []
    stats = info.get("model_stats") or {}
    steps = stats.get("api_calls")
    if steps is None:
        steps = sum(1 for m in messages if m.get("role") == "assistant")
    exit_message = next((m for m in reversed(messages) if m.get("role") == "exit"), {})
    extra = exit_message.get("extra") or {}
    return RunSummary(
        path=path,
        name=_run_name(path, info),
        exit_status=str(info.get("exit_status") or extra.get("exit_status") or ""),
        cost=float(stats.get("instance_cost") or 0.0),
        steps=int(steps or 0),
        model=_model_name(info.get("config") or {}),
        submission=str(info.get("submission") or extra.get("submission") or ""),
        messages=messages if keep_messages else [],
    )


def load_runs(paths: list[Path]) -> list[RunSummary]:
    """Summaries of `paths` (without messages, so a large batch fits in memory); a file that cannot be
    read is listed with its error instead of stopping the rest."""
    runs = []
    for path in paths:
        try:
            runs.append(load_run(path, keep_messages=False))
        except TrajectoryError as e:
            runs.append(
                RunSummary(
                    path=path, name=path.name, exit_status="unreadable", cost=0.0, steps=0, error=str(e)
                )
            )
    return runs


_TOKEN = re.compile(r'(\w+):"([^"]*)"|(\w+):(\S+)|"([^"]*)"|(\S+)')
FILTER_FIELDS = ("status", "id", "model", "text")


def parse_filter(query: str) -> list[tuple[str, str]]:
    """`status:submitted django text:"raise Error"` -> [("status", "submitted"), ("", "django"), ("text", "raise error")]."""
    terms = []
    for key1, quoted_value, key2, value, quoted, bare in _TOKEN.findall(query):
        key = (key1 or key2).lower()
        word = quoted_value or value or quoted or bare
        if key and key not in FILTER_FIELDS:
            key, word = "", f"{key}:{word}"
        if word:
            terms.append((key, word.lower()))
    return terms


@functools.lru_cache(maxsize=64)
def _file_text(path: Path, mtime: float) -> str:
    from wren.ui.messages import message_text

    try:
        messages = _read(path).get("messages") or []
    except TrajectoryError:
        return ""
    return "\n".join(message_text(m) for m in messages).lower()


def run_text(run: RunSummary) -> str:
    """All message text of `run`, lowercased (read from disk when the summary holds no messages)."""
    if run.messages:
        from wren.ui.messages import message_text

        return "\n".join(message_text(m) for m in run.messages).lower()
    try:
        return _file_text(run.path, run.path.stat().st_mtime)
    except OSError:
        return ""


def matches(run: RunSummary, terms: list[tuple[str, str]]) -> bool:
    """Every term matches: status/id/model are substrings of that field, text: searches the messages,
    a bare word matches the id, status or model."""
    for key, word in terms:
        fields = {
            "status": run.exit_status.lower(),
            "id": run.name.lower(),
            "model": run.model.lower(),
        }
        if key == "text":
            if word not in run_text(run):
                return False
        elif key:
            if word not in fields[key]:
                return False
        elif not any(word in value for value in fields.values()):
            return False
    return True


def filter_runs(runs: list[RunSummary], query: str) -> list[RunSummary]:
    terms = parse_filter(query)
    return [r for r in runs if matches(r, terms)] if terms else list(runs)
