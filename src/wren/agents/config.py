"""The agent's configuration and the templates it renders."""

from __future__ import annotations

import re
from typing import Literal

from jinja2 import Environment, StrictUndefined
from pydantic import Field, field_validator

from wren.validation import StrictModel


class HistoryConfig(StrictModel):
    """How the prompt is shortened for small context windows (the defaults change nothing)."""

    keep_last: int = Field(0, ge=0)
    """Observations kept whole at the end of the history (0 = all of them)."""
    block: int = Field(1, ge=1)
    """Older observations are stubbed this many at a time, so the prompt prefix is stable between."""
    max_observation_tokens: int = Field(0, ge=0)
    """Cap on each observation kept whole, in tokens (about 4 characters each; 0 = no cap)."""
    stub: str = "[output of an earlier command elided: {lines} lines]"
    """The one line an elided observation becomes ({lines}: its line count)."""
    old_replies: Literal["whole", "command"] = "whole"
    """Replies before a stubbed observation: whole, or only their command (THOUGHT text dropped)."""


class ResampleConfig(StrictModel):
    """Asking the model again when a reply reruns the command of the reply before it: a sampled
    small model that retries a failed edit often writes the same edit again, and a second draw
    often writes another. Off by default."""

    tries: int = Field(0, ge=0)
    """New replies asked for at most, per step (0 = off). They are not steps: the step limit counts
    the step once, whatever it took. When none of them parses and runs something new, the step
    runs the first reply after all."""
    temperature: float | None = Field(None, ge=0)
    """The temperature of those draws (None = the model's own). A model with a fixed seed draws
    each with its seed moved on, so a draw is never the same sample again."""


class AgentConfig(StrictModel):
    """Templates and limits of one agent run."""

    system_template: str
    """The system message."""
    instance_template: str
    """The first user message; it states the task."""
    action_observation_template: str
    """The message that shows a command's output (variables: output, returncode, action)."""
    format_error_template: str
    """The message sent when the reply did not hold exactly one action (variable: error)."""
    timeout_template: str
    """The message sent when a command timed out (variables: action, output, timeout)."""
    demonstrations: list[dict[str, str]] = []
    """Example turns (role + content) placed after the system message; small base models copy them."""
    cut_after_action: bool = False
    """Drop what a reply says after its first complete bash block, as a stop sequence would."""
    action_format: Literal["text", "toolcall"] = "text"
    """text: one ```bash block in the reply; toolcall: one call of the native `bash` tool."""
    action_regex: str = ""
    """text format only: a regex whose first group is the command, instead of the ```bash block rule."""
    step_limit: int = Field(default=0, ge=0)
    """Most model calls in the run (0 = no limit)."""
    cost_limit: float = Field(default=3.0, ge=0)
    """Most dollars this run may spend (0 = no limit)."""
    net_cost_limit: float = Field(default=0.0, ge=0)
    """Most dollars all runs in this process may spend together (0 = no limit)."""
    wall_time_limit: float = Field(default=0.0, ge=0)
    """Most seconds the run may take (0 = no limit)."""
    max_format_errors: int = Field(default=5, ge=0)
    """Consecutive replies without a valid action before the run ends (0 = no limit)."""
    max_repeats: int = Field(default=0, ge=0)
    """Times in a row the same command may give the same output (durations, clock times and
    addresses aside) before the run ends (0 = no limit): a model stuck in a loop learns nothing
    from the next identical step."""
    resample: ResampleConfig = Field(default_factory=ResampleConfig)
    """Asking again for a reply that reruns the step before it, instead of running it."""
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    """What of the history the model sees: recent observations whole, older ones stubbed."""

    @field_validator("action_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a regular expression ({e})") from None
        return value


def elide(text: str, head: int = 5000, tail: int = 5000) -> str:
    """`text`, or its first `head` and last `tail` characters with the count of those elided between."""
    text = str(text)
    if len(text) <= head + tail:
        return text
    elided = len(text) - head - tail
    return f"{text[:head]}\n\n[... {elided} characters elided ...]\n\n{text[len(text) - tail :]}"


def template_environment() -> Environment:
    """Jinja2 with StrictUndefined, so a misspelt variable is an error instead of an empty string."""
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    env.filters["elide"] = elide
    return env
