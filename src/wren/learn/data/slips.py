"""Slips: plausible wrong versions of a one-line fix, for demonstrations that recover from one.

A small model's near misses at a named line are the fix with one operator, keyword or number
changed, or the line rewritten as it reads. A demonstration that makes such a slip first, sees the
tests still fail, undoes it and makes the fix teaches the model to check an edit and try again
instead of submitting the first one.
"""

from __future__ import annotations

import hashlib
import random
import re

# Longer tokens first, so that `<=` is one token and not `<` then `=`.
_TOKEN = re.compile(
    r"\+=|-=|==|!=|<=|>=|<|>|\bis not\b|\bnot in\b|\bis\b|\bin\b|\band\b|\bor\b"
    r"|\bTrue\b|\bFalse\b|\bNone\b|(?<![\w.])\d+(?![\w.])| \+ | - "
)
_OTHER = {
    "+=": ["-="],
    "-=": ["+="],
    "==": ["!="],
    "!=": ["=="],
    "<=": ["<", ">="],
    ">=": [">", "<="],
    "<": ["<=", ">"],
    ">": [">=", "<"],
    "is not": ["is"],
    "not in": ["in"],
    "is": ["is not"],
    "in": ["not in"],
    "and": ["or"],
    "or": ["and"],
    "True": ["False"],
    "False": ["True"],
    "None": ["0"],
    " + ": [" - "],
    " - ": [" + "],
}


def variants(line: str) -> list[str]:
    """Every copy of `line` with one operator, keyword, constant or integer changed, in order."""
    out: list[str] = []
    for match in _TOKEN.finditer(line):
        token = match.group()
        others = _OTHER.get(token)
        if others is None:
            value = int(token)
            others = [str(value + 1)] + ([str(value - 1)] if value > 0 else [])
        for other in others:
            copy = line[: match.start()] + other + line[match.end() :]
            if copy != line and copy not in out:
                out.append(copy)
    return out


def chance(key: str) -> float:
    """A number in [0, 1) fixed by `key`: the same task makes the same choice on every run."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def slip(old: str | None, new: str, key: str) -> str | None:
    """A wrong line in place of the fix `new` (`old`: the line it replaces, None for an inserted
    line), chosen by `key`: `old` unchanged (a third of the time, where there is one) or a variant
    of the fix; None where there is neither."""
    wrong = [v for v in variants(new) if v != old]
    rng = random.Random(key)
    if old is not None and old != new and (not wrong or rng.random() < 1 / 3):
        return old
    return rng.choice(wrong) if wrong else None
