"""A scripted policy for search tests: its reply depends on how deep the conversation is.

At depth d (the number of assistant messages so far) it cycles through `replies[d]`, so repeated
samples at one state give different actions in a known order, as sampling at a temperature would.
"""

from __future__ import annotations

import time
from typing import Any

from wren.models.config import ModelConfig


def bash(command: str, thought: str = "next step") -> str:
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```"


SUBMIT = bash("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "done")


class DepthPolicyModel:
    """Cycles through `replies[depth]` at each depth; the last list is used beyond the end."""

    def __init__(self, replies: list[list[str]]):
        self.replies = replies
        self.config = ModelConfig(name="depth-policy", model_class="scripted")
        self.counters: dict[int, int] = {}
        self.n_calls = 0
        self.temperatures: list[float | None] = []
        self.program_id: str | None = None

    def query(self, messages: list[dict], **kwargs: Any) -> dict:
        depth = sum(1 for m in messages if m.get("role") == "assistant")
        options = self.replies[min(depth, len(self.replies) - 1)]
        i = self.counters.get(depth, 0)
        self.counters[depth] = i + 1
        self.n_calls += 1
        self.temperatures.append(kwargs.get("temperature", self.config.temperature))
        return {
            "role": "assistant",
            "content": options[i % len(options)],
            "extra": {"cost": 0.0, "model": "depth-policy", "timestamp": time.time()},
        }

    def get_template_vars(self) -> dict[str, Any]:
        return {"model_name": "depth-policy", "n_model_calls": self.n_calls}
