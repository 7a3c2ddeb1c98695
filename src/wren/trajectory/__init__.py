"""The run record: its schema, readers for every layout, writers, and the steps view.

Everything that reads runs goes through here:

    run = read_run(path)        # a *.traj.json, a trajectory.jsonl, or a run directory
    run.exit_status, run.submission, run.model_stats, run.config, run.messages
    for step in run.steps:      # the opening (system, demonstrations, task) is run.opening
        step.action, step.output, step.returncode, step.cost
"""

from wren.redact import REDACTED, Redactor
from wren.trajectory.messages import message_role, message_text
from wren.trajectory.readers import find_runs, read_records, read_run
from wren.trajectory.run import Run
from wren.trajectory.schema import (
    JSONL_NAME,
    LAYOUTS,
    TRAJECTORY_FORMAT,
    ModelStats,
    Step,
    Timing,
    TrajectoryError,
    final_name,
)
from wren.trajectory.steps import pages, split_steps, starts_step
from wren.trajectory.writers import TrajectoryRecorder

__all__ = [
    "JSONL_NAME",
    "LAYOUTS",
    "REDACTED",
    "TRAJECTORY_FORMAT",
    "ModelStats",
    "Redactor",
    "Run",
    "Step",
    "Timing",
    "TrajectoryError",
    "TrajectoryRecorder",
    "final_name",
    "find_runs",
    "message_role",
    "message_text",
    "pages",
    "read_records",
    "read_run",
    "split_steps",
    "starts_step",
]
