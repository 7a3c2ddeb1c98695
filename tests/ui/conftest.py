"""Saved runs to look at: Wren runs recorded by the real recorder, and a run made by mini-swe-agent itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import bash
from tests.peers.recorded_runs import FIX, record_mini_run, record_wren_run


@pytest.fixture(scope="session")
def saved_runs(tmp_path_factory) -> Path:
    """runs/: fixed (Submitted), looping (LimitsExceeded), crashed (only trajectory.jsonl); mini/: a mini-swe-agent run."""
    root = tmp_path_factory.mktemp("saved")
    record_wren_run(root, "calc-fixed", FIX)
    record_wren_run(root, "calc-looping", [bash("ls")] * 5, step_limit=3, cost=0.02)
    crashed = record_wren_run(root, "calc-crashed", FIX[:2], cost=0.0)
    # As if the process died during step 3: no final file, and no line for the step that ended it.
    (crashed / "calc-crashed.traj.json").unlink()
    lines = (crashed / "trajectory.jsonl").read_text().splitlines(keepends=True)
    (crashed / "trajectory.jsonl").write_text("".join(lines[:-1]))
    record_mini_run(root, "mini-calc")
    (root / "runs" / "broken").mkdir()
    (root / "runs" / "broken" / "broken.traj.json").write_text(json.dumps({"messages": "not a list"}))
    return root
