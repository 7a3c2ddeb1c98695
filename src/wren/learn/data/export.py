"""Training data in TRL's dataset formats, from episodes.

- SFT: conversational `messages` records; assistant turns carry `train` (False for replies that
  broke the action format) and each record a `weight` (1, or the episode's return). Replies whose
  run kept the server's tokens (`model.logprobs`) also carry `token_ids` and `logprobs`, as in DPO.
- DPO: `prompt` / `chosen` / `rejected`, conversational, for two continuations of one prefix.
- Value: a prefix and the return the episode eventually got.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from wren.learn.data.episodes import Episode
from wren.learn.data.rewards import RewardConfig, episode_return
from wren.learn.data.windows import (
    OMITTED,
    TokenCounter,
    approx_tokens,
    join,
    prefix_window,
    split_head,
    windows,
)
from wren.validation import StrictModel


class WindowSteps(StrictModel):
    """Which steps around a run's first edit one short SFT record keeps."""

    steps_before: int = Field(default=1, ge=0)
    """Steps (a reply and its output) kept before the edit; the output the edit answers is always kept."""
    steps_after: int | None = Field(default=None, ge=0)
    """Replies kept after the edit (None: every one, to the submit); the last reply is always kept
    when it submits, so a window never teaches stopping short of the submit."""
    opens_on_task: bool = False
    """The first kept reply follows the task at once, as if the run had begun with it (no note of
    the steps left out, no output before it). For steps that need nothing the run showed before
    them, such as a grep for the function the task names: the model learns to take them first."""


class EditWindow(WindowSteps):
    """SFT records as one short window around the run's first edit, so that the edit is a large
    share of the trained tokens: the head (system prompt and task), a note of the steps left out,
    the last `steps_before` steps before the edit, the edit, and every step after it (the rerun of
    the tests and the submit in a demonstration)."""

    rungs: dict[int, WindowSteps] = Field(default_factory=dict)
    """Other steps for records told at these rungs of the hint ladder (their task's `hint_level`):
    where the task does not name the wrong line, the window can keep the steps that find it."""

    def at(self, level: Any) -> WindowSteps:
        """The steps kept for a record of a task told at rung `level` (None: not on the ladder)."""
        return self.rungs.get(level, self) if isinstance(level, int) else self


class ExportConfig(StrictModel):
    """What `wren learn export` writes."""

    select: Literal["resolved", "reward"] = "resolved"
    """SFT episodes: only resolved ones (rejection sampling), or all with return above `min_return`, weighted."""
    min_return: float = 0.0
    """With select=reward: episodes at or below this return are left out."""
    max_tokens: int = 2048
    """Longest record; longer runs are cut into windows."""
    min_margin: float = 0.1
    """DPO: the least difference in return between the chosen and the rejected run."""
    gamma: float = 1.0
    """Value records: the return is discounted by gamma per remaining step."""
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    """How returns are computed."""
    edit_window: EditWindow | None = None
    """SFT records: None = the whole run, cut into windows of max_tokens; set = one short window
    around the first edit of each run (a run without an edit is cut into windows as before)."""


def reply_tokens(message: dict) -> dict[str, list]:
    """The token ids and log-probs the server gave for a reply (`model.logprobs`), when they spell
    exactly its content: a trainer can then use them instead of tokenizing the text again."""
    extra = message.get("extra") or {}
    if not isinstance(extra.get("token_ids"), list) or extra.get("content_cut"):
        return {}
    tokens = {"token_ids": extra["token_ids"]}
    if isinstance(extra.get("logprobs"), list):
        tokens["logprobs"] = extra["logprobs"]
    return tokens


def _with_tokens(shown: list[dict], messages: list[dict]) -> list[dict]:
    """`shown` with the tokens of each reply the history showed as it was (a shortened one is not
    what its tokens spell)."""
    unchanged = {id(m) for m in messages}
    return [
        {**m, **reply_tokens(m)} if m.get("role") == "assistant" and id(m) in unchanged else m for m in shown
    ]


def marked(episode: Episode) -> list[dict]:
    """The episode's messages, with format-breaking replies marked not to be trained on (and those
    the run itself marked so, such as a demonstration's slip)."""
    trained = set(episode.assistant_indices()) - set(episode.format_error_steps())
    return [
        {**m, "train": i in trained and m.get("train", True) is not False}
        if m.get("role") == "assistant"
        else m
        for i, m in enumerate(episode.messages)
    ]


def sft_records(
    episodes: Iterable[Episode], config: ExportConfig, count: TokenCounter = approx_tokens
) -> Iterator[dict[str, Any]]:
    for episode in episodes:
        ret = episode_return(episode, config.rewards)
        if config.select == "resolved":
            if not episode.resolved:
                continue
            weight = 1.0
        else:
            if ret <= config.min_return:
                continue
            weight = ret
        # Trained on what the model was shown: at inference every earlier reply is in the prompt and
        # long outputs are capped; windows of the whole trajectory taught replies to prompts the
        # model never gets.
        messages = marked(episode)
        shown = _with_tokens(episode.shown(messages), messages)
        task = episode.instance or {}
        settings = config.edit_window.at(task.get("hint_level")) if config.edit_window else None
        cut = edit_window(shown, episode, settings) if settings else None
        pieces = [cut] if cut else windows(shown, config.max_tokens, count, episode.opening)
        for i, window in enumerate(pieces):
            if any(m.get("train") for m in window if m["role"] == "assistant"):
                yield {
                    "messages": window,
                    "weight": weight,
                    "instance_id": episode.instance_id,
                    "window": i,
                    "repo": task.get("repo", ""),
                    "hint_level": task.get("hint_level"),
                    "family": task.get("family", episode.instance_id),
                }


def edit_window(shown: list[dict], episode: Episode, settings: WindowSteps) -> list[dict] | None:
    """The window of `settings` around the first edit of the run `shown`, or None without an edit."""
    from wren.learn.data.command_kinds import reply_kind

    head, rest = split_head(shown, episode.opening)
    replies = [j for j, m in enumerate(rest) if m["role"] == "assistant"]
    edits = [k for k, j in enumerate(replies) if reply_kind(rest[j], episode.action_format) == "edit"]
    if not edits:
        return None
    first = max(edits[0] - settings.steps_before, 0)
    # The body starts with the output the first kept reply answers (none before the first reply).
    noted = 0 if settings.opens_on_task else first
    start = replies[first] - 1 if noted else replies[first]
    if settings.steps_after is None or edits[0] + 1 + settings.steps_after >= len(replies):
        return join(head, noted, rest[start:])
    last_kept = replies[edits[0] + settings.steps_after]
    # Through the last reply kept and its output...
    body = rest[start : last_kept + 2]
    submit = replies[-1]
    if reply_kind(rest[submit], episode.action_format) == "submit":
        # ...then the submit, after a note of the steps left out between.
        skipped = len(replies) - 1 - (edits[0] + settings.steps_after + 1)
        body = [*body, {"role": "user", "content": OMITTED.format(n=skipped)}, rest[submit]]
    return join(head, noted, body)


def _assistant_turns(episode: Episode) -> list[int]:
    return [i for i in episode.assistant_indices() if str(episode.messages[i].get("content") or "").strip()]


def _divergence(better: Episode, worse: Episode) -> int | None:
    """The index (in `better`) of the first reply where the two runs differ, if they agree before it.

    Two runs share a prefix when their replies up to that point are the same: observations of
    the same commands on the same task are the same up to paths and timings.
    """
    a, b = _assistant_turns(better), _assistant_turns(worse)
    for k, i in enumerate(a):
        if k >= len(b):
            return None
        if better.messages[i].get("content") != worse.messages[b[k]].get("content"):
            return i
    return None


def dpo_records(
    episodes: Iterable[Episode], config: ExportConfig, count: TokenCounter = approx_tokens
) -> Iterator[dict[str, Any]]:
    by_task: dict[str, list[tuple[float, Episode]]] = defaultdict(list)
    for episode in episodes:
        by_task[episode.instance_id].append((episode_return(episode, config.rewards), episode))
    for instance_id, scored in sorted(by_task.items()):
        scored.sort(key=lambda pair: -pair[0])
        for hi, (r_better, better) in enumerate(scored):
            for r_worse, worse in scored[hi + 1 :]:
                if r_better - r_worse < config.min_margin:
                    continue
                i = _divergence(better, worse)
                if i is None:
                    continue
                k = _assistant_turns(better).index(i)
                j = _assistant_turns(worse)[k]
                yield pair_record(
                    better.shown(better.messages[:i]),
                    better.messages[i],
                    worse.messages[j],
                    config,
                    count,
                    better.opening,
                ) | {
                    "instance_id": instance_id,
                    "kind": "runs",
                    "margin": r_better - r_worse,
                }
        for _, episode in scored:
            yield from _format_pairs(episode, config, count)


def _format_pairs(episode: Episode, config: ExportConfig, count: TokenCounter) -> Iterator[dict[str, Any]]:
    """A reply that broke the format against the valid reply the model gave after being told."""
    bad = set(episode.format_error_steps())
    turns = episode.assistant_indices()
    for k, i in enumerate(turns):
        if i not in bad:
            continue
        later = next((j for j in turns[k + 1 :] if j not in bad), None)
        if later is not None:
            yield pair_record(
                episode.shown(episode.messages[:i]),
                episode.messages[later],
                episode.messages[i],
                config,
                count,
                episode.opening,
            ) | {
                "instance_id": episode.instance_id,
                "kind": "format",
                "margin": 1.0,
            }


def pair_record(
    prefix: list[dict],
    chosen: dict,
    rejected: dict,
    config: ExportConfig,
    count: TokenCounter,
    n_head: int = 0,
) -> dict[str, Any]:
    longest = max(len(str(chosen.get("content") or "")), len(str(rejected.get("content") or "")))
    prompt = prefix_window(prefix, config.max_tokens - count("x" * longest) - 8, count, n_head)
    return {
        "prompt": prompt,
        "chosen": [
            {"role": "assistant", "content": str(chosen.get("content") or ""), **reply_tokens(chosen)}
        ],
        "rejected": [
            {"role": "assistant", "content": str(rejected.get("content") or ""), **reply_tokens(rejected)}
        ],
    }


def value_records(
    episodes: Iterable[Episode], config: ExportConfig, count: TokenCounter = approx_tokens
) -> Iterator[dict[str, Any]]:
    for episode in episodes:
        ret = episode_return(episode, config.rewards)
        turns = episode.assistant_indices()
        for k, i in enumerate(turns):
            remaining = len(turns) - k - 1
            yield {
                "messages": prefix_window(
                    episode.shown(episode.messages[:i]), config.max_tokens, count, episode.opening
                ),
                "return": ret * config.gamma**remaining,
                "instance_id": episode.instance_id,
                "step": k + 1,
                "outcome": episode.outcome,
            }


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically; how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def export(
    episodes: list[Episode], output_dir: str | Path, config: ExportConfig, count: TokenCounter = approx_tokens
) -> dict[str, int]:
    """sft.jsonl, dpo.jsonl and value.jsonl in `output_dir`; the number of records of each."""
    output_dir = Path(output_dir)
    return {
        "sft": write_jsonl(output_dir / "sft.jsonl", sft_records(episodes, config, count)),
        "dpo": write_jsonl(output_dir / "dpo.jsonl", dpo_records(episodes, config, count)),
        "value": write_jsonl(output_dir / "value.jsonl", value_records(episodes, config, count)),
    }


def token_counter_for(tokenizer: str) -> tuple[TokenCounter, str]:
    """The token counter `tokenizer` names, and what counts: a training directory or GGUF file,
    '' for the bundled model's, or 'approx' (3.5 characters a token)."""
    # An estimate lets windows outgrow the trainer's max_length, which then cuts trained turns
    # away: the model's own tokenizer is the default.
    if tokenizer == "approx":
        return approx_tokens, tokenizer
    from wren.serve.convert import token_counter
    from wren.serve.embedded import default_model_path

    tokenizer = tokenizer or default_model_path()
    return token_counter(tokenizer), tokenizer


def export_runs(
    runs: list[str],
    output_dir: str | Path,
    config: ExportConfig,
    *,
    reports: list[str] | None = None,
    dataset: str | None = None,
    tokenizer: str = "",
) -> dict[str, Any]:
    """`wren learn export`: the episodes of run directories (with the verdicts of `reports`, one per
    run, by default each run's own report when judged) written as training data; the counts of
    records, episodes and what counted tokens."""
    from wren.exceptions import ConfigError
    from wren.learn.data.episodes import load_judged_episodes

    if reports and len(reports) != len(runs):
        raise ConfigError(f"--report was given {len(reports)} times for {len(runs)} runs; give one per run")
    episodes = []
    for i, run in enumerate(runs):
        episodes += load_judged_episodes(run, report=reports[i] if reports else None, dataset=dataset)
    count, counted_by = token_counter_for(tokenizer)
    counts: dict[str, Any] = export(episodes, output_dir, config, count)
    return counts | {"episodes": len(episodes), "tokenizer": counted_by}
