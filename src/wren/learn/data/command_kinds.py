"""What kind of step each command of a run is: the shape of what a model does, counted over runs.

Format and resolve rates say whether a model's runs work; the kinds say how it goes about them (a
model that only reruns the tests scores like one that reads and edits the wrong line). The kinds
are those of the demonstrations' working habit: run the tests, find, read, edit, submit.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterable
from typing import Any

from wren.environments.base import SUBMIT_MARKERS
from wren.exceptions import FormatError
from wren.models.actions import parse_action

KINDS = ("test", "find", "read", "edit", "submit", "other", "no action")

_TESTS = re.compile(r"\b(pytest|unittest|tox|nox)\b|\bmake\s+test|\bpython\S*\s+\S*test\S*\.py")
# An edit tool in a command makes it an edit even when the tests run after it (`sed -i ... && pytest`).
_EDIT_TOOL = re.compile(r"\bsed\s+(-\S*\s+)*-i|\bgit\s+apply\b|(^|[;&|]\s*)patch\b")
_EDIT = re.compile(r"\bsed\s+(-\S*\s+)*-i|\bpatch\b|\bgit\s+apply\b|(?<![0-9&])>{1,2}\s*[^&\s]|\btee\b")
_FIND = {"grep", "rg", "find", "ag", "ack", "git grep"}
_READ = {"cat", "nl", "head", "tail", "less", "more", "sed", "awk", "ls", "tree"}


def _first_word(command: str) -> str:
    """The program the command's first segment runs, past environment assignments."""
    segment = re.split(r"&&|\|\||;|\|", command, maxsplit=1)[0]
    try:
        words = shlex.split(segment)
    except ValueError:
        words = segment.split()
    words = [w for w in words if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w)]
    if len(words) >= 2 and words[0] == "git":
        return f"git {words[1]}"
    return words[0] if words else ""


def command_kind(command: str) -> str:
    """One of KINDS for a bash command (not `no action`, which is a reply without one)."""
    if any(marker in command for marker in SUBMIT_MARKERS):
        return "submit"
    if _EDIT_TOOL.search(command):
        return "edit"
    if _TESTS.search(command):
        return "test"
    if _EDIT.search(command):
        return "edit"
    first = _first_word(command)
    if first in _FIND:
        return "find"
    if first in _READ:
        return "read"
    return "other"


def reply_kind(message: dict[str, Any], action_format: str = "text") -> str:
    try:
        return command_kind(parse_action(message, action_format).command)
    except FormatError:
        return "no action"


def kind_counts(episodes: Iterable[Any]) -> dict[str, int]:
    """How many replies of each kind the episodes hold, in KINDS order (kinds never seen are 0)."""
    counts: Counter[str] = Counter()
    for episode in episodes:
        for i in episode.assistant_indices():
            counts[reply_kind(episode.messages[i], episode.action_format)] += 1
    return {kind: counts[kind] for kind in KINDS}
