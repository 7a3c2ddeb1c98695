"""Reading runs from disk, with the layout told from the path and the contents.

A run is a `*.traj.json` file (Wren's or mini-swe-agent's), a bare JSON list of messages (the oldest
mini-swe-agent files), or a `trajectory.jsonl` in a directory that has no final file yet (a run still
going, or one that crashed). A batch directory holds one sub-directory per instance.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from wren.trajectory.run import Run
from wren.trajectory.schema import (
    FINAL_SUFFIX,
    JSONL_NAME,
    MESSAGE_LIST,
    MINI_SWE_AGENT,
    WREN,
    WREN_JSONL,
    TrajectoryError,
)


def find_runs(path: str | Path) -> list[Path]:
    """The trajectory files at `path`: the file itself, or every run found under a directory."""
    path = Path(path)
    if not path.exists():
        raise TrajectoryError(f"{path} does not exist")
    if path.is_file():
        return [path]
    finals = sorted(path.rglob(f"*{FINAL_SUFFIX}"))
    have_final = {p.parent for p in finals}
    partial = sorted(p for p in path.rglob(JSONL_NAME) if p.parent not in have_final)
    found = sorted(finals + partial, key=lambda p: str(p))
    if not found:
        raise TrajectoryError(f"no trajectories (*{FINAL_SUFFIX} or {JSONL_NAME}) under {path}")
    return found


def read_records(path: str | Path) -> list[dict]:
    """The lines of a per-step `trajectory.jsonl`; a last line cut short by a crash is left out."""
    path = Path(path)
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise TrajectoryError(f"cannot read {path}: {e}") from e
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                break  # the process died while writing it
            raise TrajectoryError(f"{path}:{number} is not JSON: {e}") from e
        if not isinstance(record, dict) or not isinstance(record.get("messages", []), list):
            raise TrajectoryError(f"{path}:{number} is not a step record (an object with a `messages` list)")
        records.append(record)
    return records


def _read_jsonl(path: Path) -> Run:
    records = read_records(path)
    messages = [m for r in records for m in r.get("messages") or []]
    return Run(path=path, layout=WREN_JSONL, messages=messages, load_records=lambda: records)


def _side_records(path: Path) -> list[dict]:
    # The log beside a final file only adds detail to its steps: one that cannot be read adds none.
    try:
        return read_records(path)
    except TrajectoryError:
        return []


def _read_json(path: Path) -> Run:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrajectoryError(f"cannot read {path}: {e}") from e
    if isinstance(data, list):
        if not all(isinstance(m, dict) for m in data):
            raise TrajectoryError(f"{path} is not a trajectory (a list, but not of messages)")
        return Run(path=path, layout=MESSAGE_LIST, messages=data)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise TrajectoryError(f"{path} is not a trajectory (no `messages` list)")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    layout = WREN if "wren_version" in info else MINI_SWE_AGENT
    log = path.parent / JSONL_NAME
    load = functools.partial(_side_records, log) if layout == WREN and log.is_file() else None
    return Run(path=path, layout=layout, messages=data["messages"], info=info, load_records=load)


def read_run(path: str | Path) -> Run:
    """The run at `path`: a trajectory file, or a run directory (its final file, else its per-step log)."""
    path = Path(path)
    if path.is_dir():
        found = find_runs(path)
        if len(found) > 1:
            raise TrajectoryError(
                f"{path} holds {len(found)} runs; name one file (e.g. {found[0]}) or list them with find_runs"
            )
        path = found[0]
    elif not path.exists():
        raise TrajectoryError(f"{path} does not exist")
    return _read_jsonl(path) if path.suffix == ".jsonl" else _read_json(path)
