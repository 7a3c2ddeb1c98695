"""The hint curriculum of the loop: which rung of the hint ladder each task family is tried at.

A *family* is one synthesized task (one mutation at one site of one repository) at every rung of
the ladder: the same checkout, tests and fix, told with more or fewer hints (`wren.synth.ladder`).
A rung's copy of a family's task has the instance id `FAMILY.L<k>` and carries `family`.

Each round the loop samples the current model `samples` times on every family at the family's
rung and judges each run. Then, per family:

- some sample passed: the model has shown it can do the family at this rung, so one hint is
  withdrawn (the family moves one rung down, never below `min_level`);
- every sample failed: the family keeps its rung; after `regain_after` rounds in a row of nothing
  but failures it gets the hint above back (one rung up, never above L4).

Hints are thus given only where every sample failed, and a family's rung follows the edge of what
the model can do. The rules are pure functions of the counts, here, apart from running anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field, model_validator

from wren.learn.data.rungs import at_rung, family_of, rung_id
from wren.validation import StrictModel

__all__ = ["CurriculumConfig", "FamilyState", "advance", "at_rung", "family_of", "rung_id"]

TOP = 4


class CurriculumConfig(StrictModel):
    """The hint curriculum and best-of-n rollouts of `wren learn loop`."""

    start_level: int = Field(default=4, ge=0, le=TOP)
    """The rung every family starts at."""
    min_level: int = Field(default=1, ge=0, le=TOP)
    """The lowest rung a family is taken to (L0 is an issue with no test named)."""
    samples: int = Field(default=4, ge=1)
    """Rollouts of the current model per family per round (best-of-n: one pass counts)."""
    regain_after: int = Field(default=2, ge=1)
    """Rounds in a row in which every sample failed before a family gets the hint above back."""
    first_rollout_round: int = Field(default=0, ge=0)
    """Rounds before this one train on the demonstrations only: the base model resolves about
    nothing at any rung, so its rollouts cost time and add no successes."""
    demo_levels: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    """Rungs the demonstrations are trained at (each judged demonstration once per rung)."""
    demo_rungs: int | None = Field(default=None, ge=1)
    """How many of `demo_levels` each demonstration is told at, in turn (None: all). One record
    per demonstration lets a round train on many demonstrations in the time of few: each rung
    still gets an equal share of them."""
    eval_levels: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    """Rungs the held-out tasks are evaluated at (every model, every seed, every rung)."""

    @model_validator(mode="after")
    def _levels_exist(self) -> CurriculumConfig:
        if self.min_level > self.start_level:
            raise ValueError(f"min_level {self.min_level} is above start_level {self.start_level}")
        for name in ("demo_levels", "eval_levels"):
            levels = getattr(self, name)
            if not levels or any(not 0 <= k <= TOP for k in levels) or len(set(levels)) != len(levels):
                raise ValueError(f"{name} {levels}: give distinct rungs from 0 to {TOP}")
        if self.demo_rungs is not None and self.demo_rungs > len(self.demo_levels):
            raise ValueError(
                f"demo_rungs {self.demo_rungs} is more than the {len(self.demo_levels)} demo_levels"
            )
        return self


@dataclass(frozen=True)
class FamilyState:
    """Where one family stands."""

    level: int
    """The rung it is tried at next."""
    failed_rounds: int = 0
    """Rounds in a row, at this rung, in which every sample failed."""
    lowest_passed: int | None = None
    """The lowest rung any sample has passed it at so far."""


def advance(state: FamilyState, passes: int, config: CurriculumConfig) -> FamilyState:
    """The family's state after a round in which `passes` of its samples at `state.level` passed."""
    if passes > 0:
        lowest = state.level if state.lowest_passed is None else min(state.lowest_passed, state.level)
        return FamilyState(max(state.level - 1, config.min_level), 0, lowest)
    failed = state.failed_rounds + 1
    if failed >= config.regain_after and state.level < TOP:
        return FamilyState(state.level + 1, 0, state.lowest_passed)
    return FamilyState(state.level, failed, state.lowest_passed)


def start(tasks: Iterable[dict[str, Any]], config: CurriculumConfig) -> dict[str, FamilyState]:
    return {family_of(t): FamilyState(config.start_level) for t in tasks}


def passes_by_family(resolved: Iterable[str], tasks: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many resolved runs (instance ids, one entry per judged sample) each family of `tasks` had."""
    family = {t["instance_id"]: family_of(t) for t in tasks}
    counts = {f: 0 for f in family.values()}
    for instance_id in resolved:
        if instance_id in family:
            counts[family[instance_id]] += 1
    return counts


def step_all(
    states: dict[str, FamilyState], passes: dict[str, int], config: CurriculumConfig
) -> dict[str, FamilyState]:
    """Every family's state after a round (a family with no runs this round stays as it was)."""
    return {f: advance(s, passes[f], config) if f in passes else s for f, s in states.items()}


def rung_rates(states: dict[str, FamilyState], passes: dict[str, int], samples: int) -> dict[str, Any]:
    """Per rung, over the families tried at it in one round: how many families, how many sampled
    runs resolved of how many (`rate`), and the share of families with at least one pass."""
    by_level: dict[int, list[int]] = defaultdict(list)
    for family, state in states.items():
        by_level[state.level].append(passes.get(family, 0))
    return {
        f"L{level}": {
            "families": len(counts),
            "runs": len(counts) * samples,
            "resolved": sum(counts),
            "rate": sum(counts) / (len(counts) * samples),
            "pass_any": sum(c > 0 for c in counts) / len(counts),
        }
        for level, counts in sorted(by_level.items())
    }


def dump(states: dict[str, FamilyState]) -> dict[str, dict[str, Any]]:
    return {family: asdict(state) for family, state in sorted(states.items())}


def load(data: dict[str, dict[str, Any]]) -> dict[str, FamilyState]:
    return {family: FamilyState(**state) for family, state in data.items()}
