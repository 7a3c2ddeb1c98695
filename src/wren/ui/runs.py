"""The run list: summaries of saved runs (read through `wren.trajectory`) and their filters."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from wren.trajectory import Run, TrajectoryError, message_text, read_run


@dataclass
class RunSummary:
    """What the run list shows of one run."""

    path: Path
    name: str
    exit_status: str
    cost: float
    steps: int
    model: str = ""
    submission: str = ""
    error: str = ""
    messages: list[dict] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.exit_status or 'unfinished'})"


def summarise(run: Run, *, keep_messages: bool = True) -> RunSummary:
    """The list entry of `run`, with its messages unless `keep_messages` is False."""
    stats = run.model_stats
    return RunSummary(
        path=run.path,
        name=run.name,
        exit_status=run.exit_status,
        cost=stats.instance_cost,
        steps=stats.api_calls,
        model=run.model_name,
        submission=run.submission,
        messages=run.messages if keep_messages else [],
    )


def load_run(path: str | Path, *, keep_messages: bool = True) -> RunSummary:
    """The summary of one trajectory file, with its messages unless `keep_messages` is False."""
    return summarise(read_run(path), keep_messages=keep_messages)


def load_runs(paths: list[Path]) -> list[RunSummary]:
    """Summaries of `paths` (without messages, so a large batch fits in memory); a file that cannot be
    read is listed with its error instead of stopping the rest."""
    runs = []
    for path in paths:
        try:
            runs.append(load_run(path, keep_messages=False))
        except TrajectoryError as e:
            runs.append(
                RunSummary(
                    path=path, name=path.name, exit_status="unreadable", cost=0.0, steps=0, error=str(e)
                )
            )
    return runs


_TOKEN = re.compile(r'(\w+):"([^"]*)"|(\w+):(\S+)|"([^"]*)"|(\S+)')
FILTER_FIELDS = ("status", "id", "model", "text")


def parse_filter(query: str) -> list[tuple[str, str]]:
    """`status:submitted django text:"raise Error"` -> [("status", "submitted"), ("", "django"), ("text", "raise error")]."""
    terms = []
    for key1, quoted_value, key2, value, quoted, bare in _TOKEN.findall(query):
        key = (key1 or key2).lower()
        word = quoted_value or value or quoted or bare
        if key and key not in FILTER_FIELDS:
            key, word = "", f"{key}:{word}"
        if word:
            terms.append((key, word.lower()))
    return terms


@functools.lru_cache(maxsize=64)
def _file_text(path: Path, mtime: float) -> str:
    try:
        messages = read_run(path).messages
    except TrajectoryError:
        return ""
    return "\n".join(message_text(m) for m in messages).lower()


def run_text(run: RunSummary) -> str:
    """All message text of `run`, lowercased (read from disk when the summary holds no messages)."""
    if run.messages:
        return "\n".join(message_text(m) for m in run.messages).lower()
    try:
        return _file_text(run.path, run.path.stat().st_mtime)
    except OSError:
        return ""


def matches(run: RunSummary, terms: list[tuple[str, str]]) -> bool:
    """Every term matches: status/id/model are substrings of that field, text: searches the messages,
    a bare word matches the id, status or model."""
    for key, word in terms:
        fields = {
            "status": run.exit_status.lower(),
            "id": run.name.lower(),
            "model": run.model.lower(),
        }
        if key == "text":
            if word not in run_text(run):
                return False
        elif key:
            if word not in fields[key]:
                return False
        elif not any(word in value for value in fields.values()):
            return False
    return True


def filter_runs(runs: list[RunSummary], query: str) -> list[RunSummary]:
    terms = parse_filter(query)
    return [r for r in runs if matches(r, terms)] if terms else list(runs)
