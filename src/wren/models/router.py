"""Switching between a small and a large model inside one run.

The small model (the first of `models`) answers by default; the large one (the second) takes the
calls where a small model is known to go wrong: the first few (planning), every n-th, the call
after a format error or timeout, a reply that repeats the small model's previous one, and any
call the small model fails.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from wren.exceptions import ConfigError, ModelError
from wren.models.config import ModelConfig
from wren.validation import StrictModel, validate

logger = logging.getLogger("wren.models.router")


class RouterRules(StrictModel):
    """When the large model answers instead of the small one."""

    large_first: int = 0
    """The first N calls of a run go to the large model."""
    every: int = 0
    """Every N-th call goes to the large model (0 = never)."""
    on_feedback: str = r"^\s*(Format error|The command timed out)"
    """Regex on the last message: when it matches, the large model answers ('' = off)."""
    on_repeat: bool = True
    """Ask the large model when the small one repeats its previous reply word for word."""
    on_error: bool = True
    """Ask the large model when the small one fails after its retries."""


class RouterModel:
    """A model that routes each call to a small or a large model."""

    def __init__(self, config: ModelConfig):
        from wren.models import get_model

        if len(config.models) != 2:
            raise ConfigError("model.models must list two models for the router: [small, large]")
        self.config = config
        self.rules = validate(RouterRules, config.router, where="model.router")
        self.small, self.large = (get_model(m) for m in config.models)
        self._feedback = re.compile(self.rules.on_feedback) if self.rules.on_feedback else None
        self._last_small = ""
        self.routes: list[str] = []

    @property
    def program_id(self) -> str | None:
        return self.small.program_id

    @program_id.setter
    def program_id(self, value: str | None) -> None:
        self.small.program_id = self.large.program_id = value

    def _wants_large(self, messages: list[dict]) -> str:
        n = len(self.routes) + 1
        r = self.rules
        if n <= r.large_first:
            return "large_first"
        if r.every and n % r.every == 0:
            return "every"
        last = str(messages[-1].get("content") or "") if messages else ""
        if (
            self._feedback
            and messages
            and messages[-1].get("role") in ("user", "tool")
            and self._feedback.search(last)
        ):
            return "feedback"
        return ""

    def query(self, messages: list[dict], **kwargs: Any) -> dict:
        reason = self._wants_large(messages)
        if not reason:
            try:
                reply = self.small.query(messages, **kwargs)
            except ModelError as e:
                if not self.rules.on_error:
                    raise
                reason = f"error: {type(e).__name__}"
            else:
                content = reply.get("content") or ""
                if not (self.rules.on_repeat and content and content == self._last_small):
                    self._last_small = content
                    self.routes.append("small")
                    return reply
                reason = "repeat"
        logger.info("routing call %d to the large model (%s)", len(self.routes) + 1, reason)
        reply = self.large.query(messages, **kwargs)
        reply.setdefault("extra", {})["route"] = reason
        self.routes.append("large")
        return reply

    @property
    def cost(self) -> float:
        return self.small.cost + self.large.cost

    @property
    def n_calls(self) -> int:
        return self.small.n_calls + self.large.n_calls

    @property
    def prompt_tokens(self) -> int:
        return getattr(self.small, "prompt_tokens", 0) + getattr(self.large, "prompt_tokens", 0)

    @property
    def completion_tokens(self) -> int:
        return getattr(self.small, "completion_tokens", 0) + getattr(self.large, "completion_tokens", 0)

    def get_template_vars(self) -> dict[str, Any]:
        return self.small.get_template_vars() | {"n_model_calls": self.n_calls, "model_cost": self.cost}
