"""The steps view: a run's messages split into its opening and one step per model reply.

The opening is the system message, any demonstrations (few-shot turns, which look like replies but
are not steps) and the task. Each later model reply, or command a person typed, begins a step that
holds it and what answered it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wren.trajectory.messages import message_role
from wren.trajectory.schema import Step


def starts_step(message: dict) -> bool:
    """A model reply, or a command a person typed, begins a new step."""
    return message_role(message) in ("assistant", "human") or bool(
        (message.get("extra") or {}).get("actions")
    )


def opening_length(
    messages: Sequence[dict], records: Sequence[dict] = (), demonstrations: int | None = None
) -> int:
    """How many of `messages` open the run, before its first step.

    The per-step log says it exactly (its step 0 holds the opening); else the configured
    demonstrations do (system + demonstrations + task); else the first reply ends the opening.
    """
    if records and records[0].get("step") == 0:
        return min(len(records[0].get("messages") or []), len(messages))
    if demonstrations and messages and messages[0].get("role") == "system":
        return min(2 + demonstrations, len(messages))
    return next((i for i, m in enumerate(messages) if starts_step(m)), len(messages))


def _number(value: Any, kind: type) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _from_extras(step: Step) -> None:
    """Fill `step` from the message extras: the reply's cost and model, mini-swe-agent 2.x's actions and raw output."""
    extra = step.reply.get("extra") or {}
    step.cost = _number(extra.get("cost"), float) or 0.0
    step.prompt_tokens = _number(extra.get("prompt_tokens"), int) or 0
    step.completion_tokens = _number(extra.get("completion_tokens"), int) or 0
    step.model = str(extra.get("model") or "")
    step.latency = _number(extra.get("latency"), float)
    step.timestamp = _number(extra.get("timestamp"), float)
    actions = extra.get("actions") or []
    if actions and isinstance(actions[0], dict) and isinstance(actions[0].get("command"), str):
        step.action = actions[0]["command"]
    for answer in step.answers:
        answer_extra = answer.get("extra") or {}
        if "raw_output" in answer_extra or "returncode" in answer_extra:
            step.output = str(answer_extra.get("raw_output") or "")
            step.returncode = _number(answer_extra.get("returncode"), int)
            break


def _from_record(step: Step, record: dict) -> None:
    """Fill `step` from its line of Wren's per-step log, which says exactly what ran."""
    if "action" in record:
        step.action = str(record["action"])
        step.output = str(record.get("output") or "")
        step.returncode = _number(record.get("returncode"), int)
    for name, kind in (("cost", float), ("prompt_tokens", int), ("completion_tokens", int)):
        if name in record:
            setattr(step, name, _number(record[name], kind) or 0)
    if record.get("model"):
        step.model = str(record["model"])
    if "latency" in record:
        step.latency = _number(record["latency"], float)
    if "timestamp" in record:
        step.timestamp = _number(record["timestamp"], float)


def _same_messages(records: Sequence[dict], messages: Sequence[dict]) -> bool:
    # A log beside a final file may be another run's (two runs written to one directory).
    logged = [m for r in records for m in r.get("messages") or []]
    return len(logged) == len(messages) and all(
        a.get("role") == b.get("role") and a.get("content") == b.get("content")
        for a, b in zip(logged, messages, strict=True)
    )


def split_steps(
    messages: Sequence[dict], records: Sequence[dict] = (), *, demonstrations: int | None = None
) -> tuple[list[dict], list[Step]]:
    """(opening messages, steps) of a run; `records` are its per-step log lines, if it has them."""
    start = opening_length(messages, records, demonstrations)
    opening = list(messages[:start])
    groups: list[list[dict]] = []
    first_index: list[int] = []  # position in `messages` of each step's first message
    for i in range(start, len(messages)):
        if starts_step(messages[i]) or not groups:
            groups.append([])
            first_index.append(i)
        groups[-1].append(messages[i])
    steps = [Step(number=n, messages=group) for n, group in enumerate(groups, 1)]
    for step in steps:
        _from_extras(step)
    if records and _same_messages(records, messages):
        # Each log line lists the messages its step added; the step that holds its first one is its step.
        offset = 0
        for record in records:
            added = len(record.get("messages") or [])
            if added and offset >= start:
                index = max(n for n, first in enumerate(first_index) if first <= offset)
                _from_record(steps[index], record)
            offset += added
    return opening, steps


def as_pages(opening: list[dict], steps: list[Step]) -> list[list[dict]]:
    """Pages for display: the opening, then one page per step."""
    return ([opening] if opening else []) + [step.messages for step in steps]


def pages(messages: Sequence[dict], records: Sequence[dict] = (), **kwargs: Any) -> list[list[dict]]:
    """The pages of messages not (yet) saved, such as a run going on in the TUI."""
    return as_pages(*split_steps(messages, records, **kwargs))
