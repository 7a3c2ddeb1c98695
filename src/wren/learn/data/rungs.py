"""Task families and their rungs: one synthesized task told at each rung of the hint ladder.

A family is one synthesized task (one mutation at one site of one repository); its copy at rung
k has the instance id `FAMILY.L<k>` and carries `family`. A judged demonstration is told at another
rung by changing only its statement: the judge's inputs (tests, fix) are the same at every rung, so
the verdict stands, and the replies (made from the gold patch) do not read the statement.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wren.learn.data.episodes import Episode


def family_of(task: dict[str, Any]) -> str:
    """The family a task (or a rung's copy of one) belongs to."""
    return str(task.get("family") or task["instance_id"])


def rung_id(family: str, level: int) -> str:
    return f"{family}.L{level}"


def at_rung(task: dict[str, Any], level: int) -> dict[str, Any]:
    """The family's task with its statement at rung `level` and the instance id of that rung."""
    from wren.synth.ladder import at_level

    family = family_of(task)
    return at_level(task, level) | {"instance_id": rung_id(family, level), "family": family}


def retold(episode: Episode, level: int) -> Episode | None:
    """The episode with its task statement at rung `level`, or None where it cannot be (no task
    known, a task without the ladder's fields, or a prompt that does not hold the statement as is)."""
    from wren.synth.ladder import LadderError

    task = episode.instance
    if not task or not task.get("problem_statement"):
        return None
    try:
        copy = at_rung(task, level)
    except LadderError:
        return None
    old, new = task["problem_statement"].strip(), copy["problem_statement"].strip()
    opening = episode.opening or len(episode.messages)
    where = [
        i
        for i, m in enumerate(episode.messages[:opening])
        if m.get("role") == "user" and old in str(m.get("content") or "")
    ]
    if not where:
        return None
    messages = list(episode.messages)
    # The task is the opening's last user turn; few-shot turns before it may quote other tasks.
    i = where[-1]
    messages[i] = {**messages[i], "content": str(messages[i]["content"]).replace(old, new)}
    return dataclasses.replace(episode, instance_id=copy["instance_id"], messages=messages, instance=copy)


def at_levels(
    episodes: list[Episode], levels: list[int], per_episode: int | None = None
) -> tuple[list[Episode], int]:
    """Every episode retold at `per_episode` rungs of `levels` (None: every one), taken in turn so
    that each rung gets as many episodes as the others; how many could not be retold."""
    k = per_episode or len(levels)
    if not 1 <= k <= len(levels):
        raise ValueError(f"{k} rungs per episode: give 1 to {len(levels)}")
    out, missed = [], 0
    for i, episode in enumerate(episodes):
        for j in range(k):
            copy = retold(episode, levels[(i * k + j) % len(levels)])
            if copy is None:
                missed += 1
            else:
                out.append(copy)
    return out, missed
