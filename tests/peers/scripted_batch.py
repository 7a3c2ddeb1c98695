"""A scripted agent for batch tests: it fixes the calc fixture's bug with sed, then submits.

Every step appends `<step> <instance dir>` to a log file on the host, so a test can count
which instances ran which steps (and that none ran twice).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

FIX = r"sed -i 's/^    return x$/    if x > hi:\n        return hi\n    return x/' calc/ops.py"
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"


def _reply(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```"


def scripted_outputs(log_file: Path, *, extra_steps: int = 0, step_command: str = "true") -> list[str]:
    """Replies: `extra_steps` steps of `step_command`, the fix, then the submission; each step logs itself."""
    # The checkout lives in <instance dir>/repo; the instance dir name starts with the instance id.
    where = '$(basename "$(dirname "$PWD")")'
    outputs = [
        _reply(f"step {i}", f"echo step{i} {where} >> {log_file} && {step_command}")
        for i in range(extra_steps)
    ]
    outputs.append(_reply("fix clamp", f"echo fix {where} >> {log_file} && {FIX}"))
    outputs.append(_reply("done", SUBMIT))
    return outputs


def write_config(path: Path, outputs: list[str], **sections: dict) -> Path:
    """A config file whose model is the scripted one."""
    data = {"model": {"model_class": "scripted", "name": "scripted", "outputs": outputs}, **sections}
    path.write_text(yaml.safe_dump(data))
    return path


def ran(log_file: Path, step: str = "fix") -> list[str]:
    """Instance ids (from the instance dir names) that logged `step`, in order."""
    if not log_file.exists():
        return []
    # Checkouts live in temporary directories named wren-<instance id>.<random>.
    lines = [line.split() for line in log_file.read_text().splitlines()]
    return [words[1].rsplit(".", 1)[0].removeprefix("wren-") for words in lines if words[0] == step]


def read_preds(output_dir: Path) -> dict:
    return json.loads((output_dir / "preds.json").read_text())
