"""Deterministic models for tests and debugging: a fixed script, or the outputs of a saved run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from wren.exceptions import ModelError
from wren.models.config import ModelConfig
from wren.models.stats import GLOBAL_STATS


class ScriptedModel:
    """Returns `outputs` in order (strings, or dicts with content / tool_calls); errors when they run out."""

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        outputs: list[Any] | None = None,
        cost_per_call: float = 0.0,
        **kwargs: Any,
    ):
        self.config = config or ModelConfig(
            name=kwargs.pop("name", "scripted"), model_class="scripted", **kwargs
        )
        self.outputs = list(outputs if outputs is not None else self.config.outputs)
        self.cost_per_call = cost_per_call
        self.program_id: str | None = None
        self.cost = 0.0
        self.n_calls = 0

    def query(self, messages: list[dict], **kwargs: Any) -> dict:
        if self.n_calls >= len(self.outputs):
            raise ModelError(f"scripted model has no output left after {len(self.outputs)} calls")
        output = self.outputs[self.n_calls]
        self.n_calls += 1
        self.cost += self.cost_per_call
        GLOBAL_STATS.add(self.cost_per_call)
        message = (
            {"role": "assistant", "content": output}
            if isinstance(output, str)
            else {"role": "assistant", **output}
        )
        message.setdefault("content", "")
        message["extra"] = {
            "cost": self.cost_per_call,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "latency": 0.0,
            "model": self.config.name,
            "timestamp": time.time(),
        }
        return message

    def get_template_vars(self) -> dict[str, Any]:
        return self.config.public_dump() | {"n_model_calls": self.n_calls, "model_cost": self.cost}


def assistant_outputs(path: str | Path) -> list[dict]:
    """The assistant messages of a saved trajectory (`*.traj.json` or `trajectory.jsonl`)."""
    from wren.trajectory import read_run

    outputs = []
    for step in read_run(path).steps:  # demonstrations are in the opening, not steps: they are not replayed
        if step.reply.get("role") == "assistant":
            outputs.append({k: v for k, v in step.reply.items() if k in ("content", "tool_calls")})
    if not outputs:
        raise ModelError(f"{path} holds no assistant messages to replay")
    return outputs


class ReplayModel(ScriptedModel):
    """Replays the model outputs of a saved trajectory, in order."""

    def __init__(
        self, config: ModelConfig | None = None, *, trajectory: str | Path | None = None, **kwargs: Any
    ):
        config = config or ModelConfig(name="replay", model_class="replay", trajectory=str(trajectory or ""))
        path = trajectory or config.trajectory
        if not path:
            raise ModelError("the replay model needs `trajectory`, the path of a saved run")
        super().__init__(config, outputs=assistant_outputs(path), **kwargs)
