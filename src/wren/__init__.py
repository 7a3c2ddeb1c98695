"""Wren: software-engineering agents on small language models, at benchmark scale."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__version__ = "0.1.0"

__all__ = ["Agent", "DefaultAgent", "Environment", "Model", "__version__"]


@runtime_checkable
class Model(Protocol):
    """Anything that answers a list of chat messages with one assistant message."""

    config: Any
    cost: float
    n_calls: int

    def query(self, messages: list[dict], **kwargs: Any) -> dict:
        """Return an assistant message dict; `extra` holds cost, tokens, latency and model name.
        The agent may pass `tools`, `temperature` (this call's) and `draw` (> 0: another sample for
        a prompt already answered); a model without those ignores them."""
        ...

    def get_template_vars(self) -> dict[str, Any]: ...


@runtime_checkable
class Environment(Protocol):
    """Where actions run: a local shell, a container, a sandbox."""

    config: Any

    def execute(self, command: str, cwd: str = "", *, timeout: float | None = None) -> dict[str, Any]:
        """Run one command; return {"output": str, "returncode": int}."""
        ...

    def get_template_vars(self) -> dict[str, Any]: ...


@runtime_checkable
class Agent(Protocol):
    """Runs a task to an end state."""

    model: Model
    env: Environment
    messages: list[dict]

    def run(self, task: str, **kwargs: Any) -> Any: ...


def __getattr__(name: str) -> Any:
    # Lazy so `import wren` stays cheap and runs nothing.
    if name == "DefaultAgent":
        from wren.agents.default import DefaultAgent

        return DefaultAgent
    raise AttributeError(name)
