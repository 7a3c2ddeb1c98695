"""What scores a finished run in a search: a check command, or the instance's own tests.

A judge is called with the environment (its workspace restored to the finished node's) and the
node, and returns a reward in [0, 1].

- `CommandJudge`: one shell command for every task (`wren run --search --judge CMD`): exit 0 is 1.
- `InstanceJudge`: the instance's FAIL_TO_PASS and PASS_TO_PASS tests, judged exactly as `wren eval`
  judges a prediction (bench/evaluate.evaluate_instance: a fresh checkout, the node's submitted
  patch, the test patch, the instance's spec and test command); resolved is 1. `wren batch --search`
  uses it for every instance unless `--judge CMD` overrides it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Protocol

from wren.exceptions import ExecutionTimeoutError, Submitted


class Judge(Protocol):
    def __call__(self, env: Any, node: Any) -> float: ...


class CommandJudge:
    """Scores a workspace by a check command run in it: exit 0 is 1.0, anything else 0.0."""

    def __init__(self, command: str, timeout: float | None = None):
        self.command, self.timeout = command, timeout

    def __call__(self, env: Any, node: Any = None) -> float:
        try:
            result = env.execute(self.command, timeout=self.timeout)
        except ExecutionTimeoutError:
            return 0.0
        except Submitted:
            return 0.0
        return 1.0 if result["returncode"] == 0 else 0.0


class InstanceJudge:
    """Scores a finished node by the instance's own tests, through `wren eval`'s judge.

    The node's prediction is its submission, as `wren batch` records it: a node that did not submit
    has an empty prediction and gets 0 without running anything. Identical patches are judged once.
    Each verdict's report (SWE-bench's fields and the test log) goes to `out_dir/judge-<n>/`.
    """

    def __init__(self, instance: dict[str, Any], config: Any, out_dir: str | Path):
        self.instance, self.config, self.out_dir = instance, config, Path(out_dir)
        self.verdicts: dict[str, dict[str, Any]] = {}  # patch digest -> report
        self.by_node: dict[int, str] = {}  # node id -> outcome
        self._lock = threading.Lock()

    def report(self, patch: str) -> dict[str, Any]:
        """The judge's report on `patch` (cached by content)."""
        from wren.bench.evaluate import evaluate_instance

        key = hashlib.sha256(patch.encode()).hexdigest()
        with self._lock:
            if key not in self.verdicts:
                pred = {"instance_id": self.instance["instance_id"], "model_patch": patch}
                where = self.out_dir / f"judge-{len(self.verdicts)}"
                self.verdicts[key] = evaluate_instance(self.instance, pred, self.config, where)
            return self.verdicts[key]

    def __call__(self, env: Any, node: Any) -> float:
        patch = node.submission if node.exit_status == "Submitted" else ""
        if not patch.strip():
            self.by_node[node.id] = "no_submission"
            return 0.0
        report = self.report(patch)
        self.by_node[node.id] = report["outcome"]
        return 1.0 if report["resolved"] else 0.0

    def summary(self) -> dict[str, Any]:
        """What the judge decided, for tree.json."""
        return {
            "kind": "instance tests",
            "instance_id": self.instance["instance_id"],
            "evaluations": len(self.verdicts),
            "outcomes": {str(k): v for k, v in sorted(self.by_node.items())},
        }
