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

import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wren.exceptions import FormatError
from wren.learn.command_kinds import KINDS, reply_kind
from wren.learn.episodes import Episode
from wren.models.actions import parse_action


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
) -> dict[str, Any]:
    """Serve the GGUF with llama.cpp in this process and probe it; `config_for(api_base)` gives the
    run config whose `model` settings every query uses (grammar, reply length)."""
    from wren.learn.serving import served

    with served(gguf, n_ctx=n_ctx, parallel=workers) as api_base:
        return probe_url(episodes, config_for(api_base), workers=workers)


def probe_url(episodes: list[Episode], config: Any, *, workers: int = 1) -> dict[str, Any]:
    """Probe the model `config.model` names (any OpenAI-compatible server) greedily."""
    from wren.models import get_model

    # Greedy: the check asks what the model most expects next, not what one sample gave.
    model_config = config.model.model_copy(update={"temperature": 0.0})
    return probe(episodes, lambda: get_model(model_config), workers=workers)
