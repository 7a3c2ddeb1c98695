"""The default agent: a linear loop of query -> one bash action -> observation.

Exceptions drive control: NonTerminatingException (format error, timeout) goes back to the model as
a message; TerminatingException (Submitted, LimitsExceeded) ends the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wren.agents.config import AgentConfig, template_environment
from wren.agents.history import shorten
from wren.agents.repeats import command_of, last_command, repeated_steps, reruns
from wren.exceptions import (
    ExecutionTimeoutError,
    FormatError,
    LimitsExceeded,
    NonTerminatingException,
    RunStopped,
    TerminatingException,
)
from wren.models.actions import BASH_TOOL, cut_after_first_action, parse_action
from wren.models.stats import GLOBAL_STATS
from wren.models.tokens import TOKEN_FIELDS
from wren.trajectory.resume import ResumePoint
from wren.validation import read_yaml, validate

logger = logging.getLogger("wren.agent")


@dataclass
class AgentResult:
    """How a run ended and what it produced."""

    exit_status: str
    submission: str
    n_steps: int = 0
    cost: float = 0.0
    messages: list[dict] = field(default_factory=list, repr=False)

    def __getitem__(self, key: str) -> Any:  # dict-style access, as mini-swe-agent returns a dict
        return getattr(self, key)


@dataclass
class AgentState:
    """Where a run stands. Restoring a state makes the agent go on from it: the tree search moves
    one agent between the nodes of its tree this way."""

    messages: list[dict]
    n_steps: int = 0
    cost: float = 0.0
    format_errors: int = 0


@dataclass
class StepOutcome:
    """One attempted step: its record, and how the run ended when the step ended it."""

    record: dict[str, Any] = field(default_factory=dict)
    exit_status: str = ""
    submission: str = ""
    reason: str = ""


class DefaultAgent:
    config_class: type[AgentConfig] = AgentConfig
    """The config model; an agent with more settings names its own subclass."""

    def __init__(
        self,
        model: Any,
        env: Any,
        *,
        hooks: list[Any] | tuple = (),
        config: AgentConfig | None = None,
        **kwargs: Any,
    ):
        self.config = self.agent_config(config, kwargs)
        self.model, self.env, self.hooks = model, env, list(hooks)
        self.finished: AgentResult | None = None
        """The result once the run ended (also when a stop signal then went on up)."""
        self.messages: list[dict] = []
        self.extra_template_vars: dict[str, Any] = {}
        self.n_steps = 0
        self.n_prefix = 0  # the opening messages (system, demonstrations, task), never shortened
        self.cost = 0.0
        self.format_errors = 0
        self.start_time = time.time()
        self._jinja = template_environment()
        self._templates: dict[str, Any] = {}
        self.resume_from: ResumePoint | None = None
        """Where a run that died left off; `run` continues from there (see wren.trajectory.resume)."""

    @classmethod
    def agent_config(cls, config: AgentConfig | None, overrides: dict[str, Any]) -> AgentConfig:
        """`config` (default: the built-in agent settings) as this agent's config class, `overrides` on top:
        keyword arguments override the given config's fields, as they override the defaults."""
        if config is None:
            return validate(cls.config_class, read_yaml("default")["agent"] | overrides, where="agent")
        if isinstance(config, cls.config_class) and not overrides:
            return config
        kind = type(config) if isinstance(config, cls.config_class) else cls.config_class
        return validate(kind, config.model_dump() | overrides, where="agent")

    def render(self, template: str, **kwargs: Any) -> str:
        compiled = self._templates.get(template) or self._templates.setdefault(
            template, self._jinja.from_string(template)
        )
        return compiled.render({**self.template_vars(), **kwargs})

    def template_vars(self) -> dict[str, Any]:
        return {
            **self.env.get_template_vars(),
            **self.model.get_template_vars(),
            **self.config.model_dump(),
            "n_steps": self.n_steps,
            "cost": self.cost,
            "elapsed_seconds": int(time.time() - self.start_time),
            **self.extra_template_vars,
        }

    def add_messages(self, *messages: dict) -> None:
        self.messages.extend(messages)

    def emit(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            handler = getattr(hook, event, None)
            if handler is not None:
                handler(self, *args)

    def state(self) -> AgentState:
        """Where the run stands (a copy: later steps do not change it)."""
        return AgentState(list(self.messages), self.n_steps, self.cost, self.format_errors)

    def restore(self, state: AgentState) -> None:
        """Go on from `state`."""
        self.messages = list(state.messages)
        self.n_steps, self.cost, self.format_errors = state.n_steps, state.cost, state.format_errors

    def begin(self, task: str, **kwargs: Any) -> bool:
        """Start a run of `task`: template variables, clock, counters and the opening messages; with
        `resume_from` set, take the messages and counters of that run instead. True when resumed."""
        self.extra_template_vars = {"task": task, **kwargs}
        self.messages, self.n_steps, self.cost, self.format_errors = [], 0, 0.0, 0
        self.finished = None
        self.start_time = time.time()
        if self.resume_from is not None:
            self.messages = list(self.resume_from.messages)
            self.n_steps, self.cost = self.resume_from.n_steps, self.resume_from.cost
            self.n_prefix = self.resume_from.n_prefix
            return True
        self.add_messages(
            {"role": "system", "content": self.render(self.config.system_template)},
            *(
                {"role": d["role"], "content": d["content"], "extra": {"demonstration": True}}
                for d in self.config.demonstrations
            ),
            {"role": "user", "content": self.render(self.config.instance_template)},
        )
        self.n_prefix = len(self.messages)
        return False

    def attempt(self, step: Callable[[], dict[str, Any]]) -> StepOutcome:
        """Run `step` with the run's handling of its exceptions: a recoverable one (format error,
        timeout) goes back to the model as an observation; a final one (submission, limit) ends the run."""
        try:
            record = step()
        except NonTerminatingException as e:
            try:
                self.add_messages(*self.observation(self.render_error(e)))
            except TerminatingException as limit:
                return StepOutcome({}, limit.exit_status, limit.submission, str(limit))
            return StepOutcome()
        except TerminatingException as e:
            return StepOutcome({}, e.exit_status, e.submission, str(e))
        self.format_errors = 0
        return StepOutcome(record)

    def run(self, task: str, **kwargs: Any) -> AgentResult:
        """Run `task` to its end; with `resume_from` set, continue that run instead of starting one."""
        self.emit("on_resume" if self.begin(task, **kwargs) else "on_start")
        while True:
            start = len(self.messages)
            try:
                outcome = self.attempt(self._next_step)
            except Exception as e:  # an unexpected error ends the run, and the trajectory says why
                logger.exception("run ended by %s", type(e).__name__)
                outcome = StepOutcome({}, type(e).__name__, "", f"{type(e).__name__}: {e}")
            except (KeyboardInterrupt, RunStopped) as e:
                # Ctrl-C or a signal: the trajectory says so, then the stop goes on up so that the
                # caller's cleanup runs and the process exits as the signal asks.
                status = getattr(e, "exit_status", "Interrupted")
                self._finish(start, {}, status, "", str(e) or status, stopping=True)
                raise
            if outcome.exit_status:
                return self._finish(
                    start, outcome.record, outcome.exit_status, outcome.submission, outcome.reason
                )
            self.emit("on_step", {"step": self.n_steps, "messages": self.messages[start:], **outcome.record})

    def _next_step(self) -> dict[str, Any]:
        # `before_step` hooks may end the run (a batch that stops): inside `attempt`, so it is recorded.
        self.emit("before_step")
        return self.step()

    def _finish(
        self, start: int, record: dict, status: str, submission: str, reason: str, *, stopping: bool = False
    ) -> AgentResult:
        """Record the exit message as the last step and tell the hooks the run ended.

        `stopping`: a signal ends the run, so a hook that fails (a printer whose terminal closed with
        SIGHUP) must not keep the others (the trajectory recorder) from hearing of the end.
        """
        emit = self._emit_each if stopping else self.emit
        extra = {"exit_status": status, "submission": submission, "reason": reason}
        self.add_messages({"role": "exit", "content": submission or reason, "extra": extra})
        emit("on_step", {"step": self.n_steps, "messages": self.messages[start:], **record})
        result = AgentResult(status, submission, self.n_steps, self.cost, self.messages)
        self.finished = result
        emit("on_finish", result)
        return result

    def _emit_each(self, event: str, *args: Any) -> None:
        """Emit to every hook even if one fails or is interrupted again, so the recorder still writes."""
        for hook in self.hooks:
            handler = getattr(hook, event, None)
            if handler is not None:
                try:
                    handler(self, *args)
                except (Exception, KeyboardInterrupt, SystemExit):  # rich exits on a closed terminal
                    logger.debug("hook %s.%s failed while the run stopped", type(hook).__name__, event)

    def render_error(self, error: NonTerminatingException) -> str:
        if isinstance(error, FormatError):
            self.format_errors += 1
            if 0 < self.config.max_format_errors <= self.format_errors:
                raise LimitsExceeded(
                    f"{self.format_errors} format errors in a row", limit="max_format_errors"
                )
            return self.render(self.config.format_error_template, error=str(error), actions=error.actions)
        if isinstance(error, ExecutionTimeoutError):
            return self.render(
                self.config.timeout_template,
                action=error.action,
                output=error.output,
                timeout=f"{error.timeout:g}",
            )
        return str(error)

    def observation(self, content: str) -> list[dict]:
        """Messages that answer the last reply: one per tool call it made (APIs require it), else one user message."""
        last = self.messages[-1] if self.messages else {}
        calls = last.get("tool_calls") if last.get("role") == "assistant" else None
        if not calls:
            return [{"role": "user", "content": content}]
        first, *rest = calls
        return [{"role": "tool", "tool_call_id": first.get("id"), "content": content}] + [
            {
                "role": "tool",
                "tool_call_id": c.get("id"),
                "content": "Not run: only one tool call per reply is allowed.",
            }
            for c in rest
        ]

    def check_limits(self) -> None:
        c = self.config
        if 0 < c.step_limit <= self.n_steps:
            raise LimitsExceeded(f"step limit {c.step_limit} reached", limit="step_limit")
        if 0 < c.cost_limit <= self.cost:
            raise LimitsExceeded(f"cost limit ${c.cost_limit} reached", limit="cost_limit")
        if 0 < c.net_cost_limit <= GLOBAL_STATS.cost:
            raise LimitsExceeded(f"net cost limit ${c.net_cost_limit} reached", limit="net_cost_limit")
        if 0 < c.wall_time_limit <= time.time() - self.start_time:
            raise LimitsExceeded(f"wall time limit {c.wall_time_limit:g} s reached", limit="wall_time_limit")
        if c.max_repeats > 0:
            repeats = repeated_steps(self.messages[self.n_prefix :], c.action_format, c.action_regex)
            if repeats >= c.max_repeats:
                raise LimitsExceeded(
                    f"the same command gave the same output {repeats} times in a row", limit="max_repeats"
                )

    def query(self, temperature: float | None = None) -> dict:
        """One model call on the history, as the run's next step; `temperature` samples this call
        at that temperature."""
        self.check_limits()
        self.n_steps += 1
        message = self.sample(temperature)
        self.add_messages(message)
        return message

    def sample(self, temperature: float | None = None, draw: int = 0) -> dict:
        """A reply to the history, not yet part of it. `draw` > 0: another draw for the same
        history (a model with a fixed seed moves it on by `draw`)."""
        tools = [BASH_TOOL] if self.config.action_format == "toolcall" else None
        sampling: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        if draw:
            sampling["draw"] = draw
        message = self.model.query(self.prompt_messages(), tools=tools, **sampling)
        if self.config.cut_after_action and message.get("content"):
            cut = cut_after_first_action(message["content"])
            if cut != message["content"] and "token_ids" in (message.get("extra") or {}):
                # The token ids stay those the model generated; the content no longer spells them all.
                message["extra"]["content_cut"] = True
            message["content"] = cut
        self.cost += (message.get("extra") or {}).get("cost", 0.0)
        return message

    def unrepeated(self, message: dict, command: str) -> tuple[dict, str]:
        """The reply to run, and its command: `message` (the history's last), or, when its command
        reruns the step before it, the first of up to `resample.tries` new draws that parses and
        does not. The replies set aside stay in the chosen one's `extra.resampled`, in order, so
        the trajectory keeps every call the step made."""
        c = self.config
        if not c.resample.tries:
            return message, command
        earlier = last_command(self.messages[self.n_prefix : -1], c.action_format, c.action_regex)
        if earlier is None or not reruns(command, earlier):
            return message, command
        self.messages.pop()
        set_aside: list[dict] = []
        chosen = (message, command)
        try:
            for draw in range(1, c.resample.tries + 1):
                reply = self.sample(c.resample.temperature, draw)
                new = command_of(reply, c.action_format, c.action_regex)
                if new is not None and not reruns(new, earlier):
                    set_aside.insert(0, message)
                    chosen = (reply, new)
                    break
                set_aside.append(reply)
        finally:
            # Also when a draw fails (the model gone, the run stopped): the first reply goes back.
            reply, new = chosen
            reply.setdefault("extra", {})["resampled"] = [
                {k: m[k] for k in ("content", "tool_calls") if m.get(k) is not None} for m in set_aside
            ]
            self.add_messages(reply)
        return reply, new

    def prompt_messages(self) -> list[dict]:
        """The history as the model sees it (see wren.agents.history); the trajectory keeps it all."""
        return shorten(self.messages, self.n_prefix, self.config.history)

    def step(self) -> dict[str, Any]:
        """Query, parse one action, execute it; return the step's record."""
        message = self.query()
        action = parse_action(message, self.config.action_format, self.config.action_regex)
        return self.execute_action(*self.unrepeated(message, action.command))

    def execute_action(self, message: dict, command: str) -> dict[str, Any]:
        """Run `command`, append its observation, and return the step's record."""
        try:
            result = self.env.execute(command)
        except ExecutionTimeoutError as e:
            e.action = command
            raise
        observation = self.render(self.config.action_observation_template, action=command, **result)
        self.add_messages(*self.observation(observation))
        return {
            "action": command,
            "output": result["output"],
            "returncode": result["returncode"],
            # Token ids and log-probs stay in the message alone: the record would hold them twice.
            **{k: v for k, v in (message.get("extra") or {}).items() if k not in TOKEN_FIELDS},
        }
