"""The held-out next-step check: what a model replies at each step of demonstrations it never trained on.

Agent runs on held-out tasks take most of a loop's time and, while no model resolves anything, do
not say which steps a model has learnt. Teacher forcing a demonstration of a held-out task does:
at each of its steps the model gets exactly the prompt the demonstration's reply had (the run's
history settings applied, as the agent applied them) and its reply is compared with the
demonstration's, by kind of command (test, find, read, edit, submit) and exactly. A model that
has learnt the method gives the next step's kind everywhere and the exact command where the run
showed what it must be (the grep after the test names the function, the read starts at the line
grep printed, the edit copies the line the read printed with the mistake changed).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import Field

from wren.exceptions import FormatError
from wren.learn.data.command_kinds import KINDS, reply_kind
from wren.learn.data.episodes import Episode
from wren.models.actions import parse_action
from wren.validation import StrictModel


class EditCheck(StrictModel):
    """Sampled edits at the first edit step of each demonstration, each applied and judged."""

    samples: int = Field(default=0, ge=0)
    """Replies sampled at the edit step per demonstration (0: no edit check)."""
    temperature: float = 0.7
    """Their sampling temperature (each sample its own seed)."""


def _command(message: dict[str, Any], action_format: str) -> str | None:
    try:
        # Only the ends: inside a command, spaces can be the fix (the indentation of an edited line).
        return parse_action(message, action_format).command.strip()
    except FormatError:
        return None


def probe_episode(model: Any, episode: Episode) -> list[dict[str, Any]]:
    """The model's reply at every step of `episode`, beside the episode's own reply."""
    items = []
    for step, i in enumerate(episode.assistant_indices(), start=1):
        expected = episode.messages[i]
        # Steps in order, on one connection: the server keeps the prompt so far in its cache and
        # only reads what the step added.
        reply = model.query(episode.shown(episode.messages[:i]))
        want = _command(expected, episode.action_format)
        got = _command(reply, episode.action_format)
        items.append(
            {
                "instance_id": episode.instance_id,
                "step": step,
                "kind": reply_kind(expected, episode.action_format),
                "reply_kind": reply_kind(reply, episode.action_format),
                "exact": want is not None and got == want,
                "expected": want,
                "reply": str(reply.get("content") or ""),
            }
        )
    return items


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Same-kind and exact rates over all steps, by step number and by the demonstration's kind,
    and what the model gave instead (`confusion`: demonstration kind -> reply kind -> count)."""

    def rates(group: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(group)
        return {
            "n": n,
            "same_kind": sum(it["reply_kind"] == it["kind"] for it in group) / n if n else 0.0,
            "exact": sum(it["exact"] for it in group) / n if n else 0.0,
        }

    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for it in items:
        by_step[it["step"]].append(it)
        by_kind[it["kind"]].append(it)
        confusion[it["kind"]][it["reply_kind"]] += 1
    return {
        "overall": rates(items),
        "by_step": {str(step): rates(group) for step, group in sorted(by_step.items())},
        "by_kind": {kind: rates(by_kind[kind]) for kind in KINDS if kind in by_kind},
        "confusion": {
            kind: {k: confusion[kind][k] for k in KINDS if confusion[kind][k]}
            for kind in KINDS
            if kind in confusion
        },
    }


def probe(episodes: list[Episode], make_model: Callable[[], Any], workers: int = 1) -> dict[str, Any]:
    """Every step of every episode put to a model (one per worker thread, from `make_model`)."""
    local = threading.local()

    def run(episode: Episode) -> list[dict[str, Any]]:
        if not hasattr(local, "model"):
            local.model = make_model()
        return probe_episode(local.model, episode)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        items = [it for batch in pool.map(run, episodes) for it in batch]
    return {"episodes": len(episodes), "summary": summarize(items), "items": items}


def probe_served(
    gguf: str,
    episodes: list[Episode],
    config_for: Callable[[str], Any],
    *,
    n_ctx: int = 4096,
    workers: int = 1,
    lora: list[str] = (),
    edit_check: EditCheck | None = None,
    judge_dir: str | Path = "",
) -> dict[str, Any]:
    """Serve the GGUF (with adapter GGUFs over it) with llama.cpp in this process and probe it;
    `config_for(api_base)` gives the run config whose `model` settings every query uses."""
    from wren.serve.served import served

    with served(gguf, n_ctx=n_ctx, parallel=workers, lora=list(lora)) as api_base:
        return probe_config(
            episodes, config_for(api_base), workers=workers, edit_check=edit_check, judge_dir=judge_dir
        )


def probe_config(
    episodes: list[Episode],
    config: Any,
    *,
    workers: int = 1,
    edit_check: EditCheck | None = None,
    judge_dir: str | Path = "",
) -> dict[str, Any]:
    """The greedy next-step check of the model `config.model` names (any OpenAI-compatible
    server), and with `edit_check.samples`, the sampled edits applied and judged in `judge_dir`."""
    result = probe_url(episodes, config, workers=workers)
    if edit_check and edit_check.samples:
        commands = sample_edits(episodes, config.model, edit_check, workers)
        result["edits"] = judge_edits(
            episodes, commands, config, judge_dir or tempfile.mkdtemp(prefix="wren-probe-")
        )
    return result


def probe_url(episodes: list[Episode], config: Any, *, workers: int = 1) -> dict[str, Any]:
    """Probe the model `config.model` names (any OpenAI-compatible server) greedily."""
    from wren.models import get_model

    # Greedy: the check asks what the model most expects next, not what one sample gave.
    model_config = config.model.model_copy(update={"temperature": 0.0})
    return probe(episodes, lambda: get_model(model_config), workers=workers)


def edit_prompt(episode: Episode) -> tuple[list[dict], int] | None:
    """The prompt of the demonstration's first edit (what the model saw when it had to fix), and
    its step number; None when the demonstration has no edit."""
    for step, i in enumerate(episode.assistant_indices(), start=1):
        if reply_kind(episode.messages[i], episode.action_format) == "edit":
            return episode.shown(episode.messages[:i]), step
    return None


def sample_edits(
    episodes: list[Episode], model_config: Any, check: EditCheck, workers: int = 1
) -> dict[str, list[str | None]]:
    """instance id -> the commands of `check.samples` replies at its first edit step (None: no action)."""
    from wren.models import get_model

    def one(episode: Episode) -> tuple[str, list[str | None]]:
        found = edit_prompt(episode)
        if found is None:
            return episode.instance_id, []
        prompt, _ = found
        commands = []
        for j in range(check.samples):
            seed = {**model_config.completion_kwargs, "seed": 7919 * (j + 1)}
            model = get_model(
                model_config.model_copy(update={"temperature": check.temperature, "completion_kwargs": seed})
            )
            commands.append(_command(model.query(prompt), episode.action_format))
        return episode.instance_id, commands

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(pool.map(one, episodes))


def _patch_of(command: str, instance: dict[str, Any], repos: str, where: Path) -> str:
    """The diff `command` makes in a fresh checkout of the instance at its base commit (removed after)."""
    from wren.bench.repos import checkout, find_repo
    from wren.environments import get_environment

    try:
        repo = checkout(find_repo(repos, instance["repo"]), instance["base_commit"], where)
        env = get_environment({"environment_class": "local", "cwd": str(repo), "timeout": 30})
        try:
            env.execute(command)
            return env.execute("git diff")["output"]
        finally:
            env.close()
    finally:
        shutil.rmtree(where, ignore_errors=True)


def judge_edits(
    episodes: list[Episode], commands: dict[str, list[str | None]], config: Any, out_dir: str | Path
) -> dict[str, Any]:
    """Each distinct sampled command run in a fresh checkout of its task at the base commit (the
    steps before an edit change no file), its diff judged by the task's own tests as `wren eval`
    judges. `fix_rate`: the share of demonstrations with at least one sample that resolves the task
    (pass@k at the edit step, given a perfect run up to it)."""
    from wren.bench.evaluate import judge_config
    from wren.exceptions import WrenError
    from wren.search.judges import InstanceJudge

    out_dir = Path(out_dir)
    eval_config = judge_config(config, workers=1)
    per_task: dict[str, Any] = {}
    for episode in episodes:
        instance = episode.instance or {}
        sampled = commands.get(episode.instance_id) or []
        if not sampled or not instance:
            continue
        judge = InstanceJudge(instance, eval_config, out_dir / episode.instance_id)
        verdicts: dict[str, str] = {}
        for n, command in enumerate(dict.fromkeys(c for c in sampled if c)):
            try:
                patch = _patch_of(
                    command,
                    instance,
                    config.bench.workspace.repos,
                    out_dir / episode.instance_id / f"sample-{n}",
                )
            except WrenError as e:
                verdicts[command] = f"failed: {e}"
                continue
            verdicts[command] = judge.report(patch)["outcome"] if patch.strip() else "no change"
        fixed = sum(sampled.count(c) for c, v in verdicts.items() if v == "resolved")
        per_task[episode.instance_id] = {
            "samples": len(sampled),
            "distinct": len(verdicts),
            "fixed": fixed,
            "outcomes": dict(Counter(verdicts.values())),
            "verdicts": verdicts,
        }
    tasks = len(per_task)
    return {
        "tasks": tasks,
        "fix_rate": sum(t["fixed"] > 0 for t in per_task.values()) / tasks if tasks else 0.0,
        "sample_fix_rate": (
            sum(t["fixed"] for t in per_task.values()) / sum(t["samples"] for t in per_task.values())
            if tasks
            else 0.0
        ),
        "per_task": per_task,
    }


def corrective_pairs(
    episodes: list[Episode], items: list[dict[str, Any]], config: Any, count: Any
) -> Iterator[dict[str, Any]]:
    """DPO pairs from a probe of training demonstrations: wherever the model's greedy reply ran
    another command than the demonstration, the demonstration's reply is chosen over the model's,
    with the prompt both had (`kind: probe`). These are the model's own mistakes on prefixes of
    runs that worked, which its rollouts reach only after earlier mistakes of their own."""
    from wren.learn.data.export import pair_record

    by_id = {e.instance_id: e for e in episodes}
    for it in items:
        episode = by_id.get(it["instance_id"])
        if it["exact"] or episode is None:
            continue
        i = episode.assistant_indices()[it["step"] - 1]
        rejected = {"role": "assistant", "content": it["reply"]}
        prefix = episode.shown(episode.messages[:i])
        yield pair_record(prefix, episode.messages[i], rejected, config, count, episode.opening) | {
            "instance_id": it["instance_id"],
            "kind": "probe",
            "margin": 1.0,
            "step": it["step"],
        }
