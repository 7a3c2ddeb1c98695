"""PPO's advantages over agent episodes: the value model's estimate before every assistant turn,
GAE over the turns, each turn's advantage spread over that turn's tokens.

A turn is one assistant reply; the state s_t before it is the conversation up to it (what the policy
saw), valued by the value model (`wren.search.value`). The episode's return is the reward of its last
turn and every other turn's reward is 0, so with gamma = lam = 1 each turn's advantage is the return
minus the value before it; lam < 1 leans on the value model's later estimates. The update itself is
`loss.ppo_update`, the same as GRPO's (`iteration.rl_iteration`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wren.learn.train.rl.loss import RLConfig, gae

ValueFn = Callable[[list[dict]], float]


def turn_states(messages: list[dict]) -> list[list[dict]]:
    """The conversation before each assistant turn, in order."""
    return [messages[:i] for i, m in enumerate(messages) if m.get("role") == "assistant"]


def episode_advantages(
    records: list[dict[str, Any]], value_fn: ValueFn, rl: RLConfig
) -> tuple[list[list[float]], list[list[float]]]:
    """Per episode, per assistant turn: the GAE advantage and the value model's estimate."""
    advantages, values = [], []
    for record in records:
        states = turn_states(record["messages"])
        v = [float(value_fn(s)) for s in states]
        rewards = [0.0] * len(states)
        if rewards:
            rewards[-1] = float(record["reward"])
        adv, _ = gae(rewards, v, rl.gamma, rl.lam)
        advantages.append(adv)
        values.append(v)
    return advantages, values
