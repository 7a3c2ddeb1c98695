"""Rewards: plain functions of an episode, in a registry, combined by weights.

Each function maps an `Episode` to a float. `resolved` and `tests` need the judge's verdict;
`similarity` needs the task's gold patch; the penalties need only the trajectory.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from pydantic import Field, field_validator

from wren.exceptions import ConfigError
from wren.learn.data.episodes import Episode
from wren.registry import split_dotted
from wren.validation import StrictModel, did_you_mean

RewardFn = Callable[[Episode], float]
REWARDS: dict[str, RewardFn] = {}


def reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Register a reward function under `name`."""

    def register(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return register


def get_reward(name: str) -> RewardFn:
    """A reward by short name, or a dotted path `pkg.module:function` / `pkg.module.function`.

    Rewards are functions, not classes, so they have this registry of their own rather than
    `wren.registry.Registry`; names and dotted paths read the same way.
    """
    if name in REWARDS:
        return REWARDS[name]
    module, attr = split_dotted(name)
    if module and attr:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError(f"cannot load reward {name!r}: {e}") from None
    raise ConfigError(
        f"unknown reward {name!r}{did_you_mean(name, REWARDS)}; known: {', '.join(sorted(REWARDS))}, "
        "or a dotted path pkg.module:function"
    )


@reward("resolved")
def resolved(episode: Episode) -> float:
    """1 when the judge resolved the run's patch, else 0."""
    return 1.0 if episode.resolved else 0.0


@reward("tests")
def tests(episode: Episode) -> float:
    """The fraction of FAIL_TO_PASS tests that now pass, minus the fraction of PASS_TO_PASS that broke."""
    status = (episode.verdict or {}).get("tests_status")
    if not status:
        return 0.0

    def fraction(key: str, part: str) -> float:
        entry = status.get(key) or {}
        total = len(entry.get("success", [])) + len(entry.get("failure", []))
        return len(entry.get(part, [])) / total if total else 0.0

    return fraction("FAIL_TO_PASS", "success") - fraction("PASS_TO_PASS", "failure")


@reward("similarity")
def similarity(episode: Episode) -> float:
    """How close the patch is to the gold patch (difflib's ratio, as SWE-RL scores); 0 without either."""
    gold = (episode.instance or {}).get("patch") or ""
    if not gold.strip() or not episode.patch.strip():
        return 0.0
    return difflib.SequenceMatcher(None, _changed_lines(episode.patch), _changed_lines(gold)).ratio()


def _changed_lines(patch: str) -> list[str]:
    # Headers and context differ with tools (git diff vs difflib) without the change differing.
    return [line for line in patch.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@reward("format")
def format_penalty(episode: Episode) -> float:
    """Minus the fraction of replies that did not hold exactly one action."""
    return -len(episode.format_error_steps()) / episode.n_steps if episode.n_steps else 0.0


@reward("steps")
def step_penalty(episode: Episode) -> float:
    """Minus the number of model calls, per hundred (shorter runs to the same result score higher)."""
    return -episode.n_steps / 100.0


@reward("submitted")
def submitted(episode: Episode) -> float:
    """1 when the run ended by submitting, else 0."""
    return 1.0 if episode.submitted else 0.0


class RewardConfig(StrictModel):
    """How an episode's return is made of the registered rewards."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"resolved": 1.0, "tests": 0.5, "format": 0.2, "steps": 0.05}
    )
    """Reward name (or dotted path) -> weight; the return is the weighted sum."""

    @field_validator("weights")
    @classmethod
    def _known(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            get_reward(name)
        return value


def reward_terms(episode: Episode, config: RewardConfig) -> dict[str, float]:
    """Each weighted reward's unweighted value."""
    return {name: float(get_reward(name)(episode)) for name in config.weights}


def episode_return(episode: Episode, config: RewardConfig) -> float:
    """The weighted sum of the configured rewards."""
    terms = reward_terms(episode, config)
    return sum(config.weights[name] * value for name, value in terms.items())
