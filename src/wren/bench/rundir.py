"""A run directory: what `wren batch` (or `wren run`) leaves behind, and the judge's report beside it.

    RUN/
      <instance_id>/<instance_id>.traj.json   the final trajectory (trajectory.jsonl while running)
      preds.json                              {instance_id: {instance_id, model_name_or_path, model_patch}}
      exit_statuses.json                      {instance_id: {exit_status, failure, n_steps, cost, ...}}
      report.json                             `wren eval`'s report of the predictions (once judged)

Everything that reads or writes these files names them through `RunDir`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError
from wren.trajectory.schema import FINAL_SUFFIX, JSONL_NAME

PREDS_FILE = "preds.json"
STATUS_FILE = "exit_statuses.json"
REPORT_FILE = "report.json"


def read_json_file(path: Path, what: str) -> Any:
    """The JSON in `path`, or a ConfigError naming `what` it should have been."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from e


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    @property
    def preds(self) -> Path:
        return self.path / PREDS_FILE

    @property
    def exit_statuses(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def report(self) -> Path:
        return self.path / REPORT_FILE

    def judged_report(self) -> Path | None:
        """The judge's report when the run has been judged, else None."""
        return self.report if self.report.is_file() else None

    def instance_dir(self, instance_id: str) -> Path:
        return self.path / instance_id

    def require(self) -> RunDir:
        """This run directory, or a ConfigError when it does not exist."""
        if not self.path.is_dir():
            raise ConfigError(f"run directory {self.path} does not exist")
        return self

    def read_preds(self) -> dict[str, Any]:
        """The predictions by instance id ({} before the first instance finished)."""
        return read_json_file(self.preds, "predictions") if self.preds.is_file() else {}

    def read_verdicts(self, report: str | Path | None = None) -> dict[str, Any]:
        """The judge's verdict per instance, from `report` (default: none)."""
        return read_json_file(Path(report), "eval report").get("instances", {}) if report else {}

    def trajectories(self) -> dict[str, Path]:
        """instance id -> its final trajectory (or its trajectory.jsonl while none was written)."""
        found: dict[str, Path] = {}
        for traj in sorted(self.path.glob(f"*/*{FINAL_SUFFIX}")):
            found[traj.name.removesuffix(FINAL_SUFFIX)] = traj
        for jsonl in sorted(self.path.glob(f"*/{JSONL_NAME}")):
            found.setdefault(jsonl.parent.name, jsonl)
        for traj in sorted(self.path.glob(f"*{FINAL_SUFFIX}")):  # a single `wren run` directory
            found.setdefault(traj.name.removesuffix(FINAL_SUFFIX), traj)
        return found
