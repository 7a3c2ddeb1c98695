"""Telling when a small model repeats itself: the same command with the same output again (a
loop the run's `max_repeats` ends), or a reply that reruns the command before it (one the agent's
`resample` asks again for)."""

from __future__ import annotations

import re
from typing import Any

from wren.exceptions import FormatError
from wren.models.actions import parse_action

# What changes between two runs of the same command when nothing else did: durations ("in
# 0.12s", "3 ms"), clock times and memory addresses. Test runners print the first in every run, so
# without this a model rerunning the same failing test forever would never count as repeating.
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_VOLATILE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:s|ms|us|µs|sec|secs|seconds?)\b|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b|"
    + ADDRESS.pattern
)
# Where a shell list splits into the commands it runs one after another. Pipes stay inside a part:
# `pytest | tail` is one check, not two.
_LIST_SEPARATOR = re.compile(r"&&|\|\||;|\n")


def steady_output(output: Any) -> Any:
    """`output` with its durations, clock times and addresses blanked; counters stay (they are progress)."""
    return _VOLATILE.sub("#", output) if isinstance(output, str) else output


def repeated_steps(messages: list[dict], action_format: str = "text", action_regex: str = "") -> int:
    """How many steps in a row, at the end of `messages`, ran the same command and got the same
    output (but for durations, clock times and addresses). Read from the messages, not counted as
    the run goes, so a search that sets an agent's history to any node of its tree gets that node's
    count."""
    count, last = 0, None
    i = len(messages) - 2
    while i >= 0 and messages[i].get("role") == "assistant":
        try:
            command = parse_action(messages[i], action_format, action_regex).command
        except FormatError:
            break
        step = (command, steady_output(messages[i + 1].get("content")))
        if last is not None and step != last:
            break
        count, last = count + 1, step
        i -= 2
    return count


def list_parts(command: str) -> list[str]:
    """The commands a shell list runs in turn (split at `&&`, `||`, `;` and new lines), each with
    its whitespace collapsed. Quoting is not parsed: both commands compared are split alike."""
    parts = (" ".join(part.split()) for part in _LIST_SEPARATOR.split(command))
    return [part for part in parts if part]


def reruns(command: str, earlier: str) -> bool:
    """Whether `command` runs `earlier` again: the same parts in the same order, alone or with
    others around them (`git checkout -- f && EARLIER` undoes an edit only to make it again)."""
    new, old = list_parts(command), list_parts(earlier)
    n = len(old)
    return n > 0 and any(new[i : i + n] == old for i in range(len(new) - n + 1))


def command_of(message: dict, action_format: str = "text", action_regex: str = "") -> str | None:
    """The command `message` holds (None: it holds no valid action)."""
    try:
        return parse_action(message, action_format, action_regex).command
    except FormatError:
        return None


def last_command(messages: list[dict], action_format: str = "text", action_regex: str = "") -> str | None:
    """The command of the last reply in `messages` that held one (None: no reply did)."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            command = command_of(message, action_format, action_regex)
            if command is not None:
                return command
    return None
