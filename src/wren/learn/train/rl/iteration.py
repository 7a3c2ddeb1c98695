"""GRPO and PPO over agent episodes: judged runs -> advantages -> one collected batch -> clipped
updates of the policy's LoRA (`wren learn rl --method grpo|ppo`).

GRPO: episodes of the same task form a group; each episode's return (the reward registry) minus its
group's mean, over the group's std, is the advantage of every token the policy produced in it (the
assistant turns, as the chat template renders them). PPO: GAE over each episode's turns with the
value model's estimates (`critic`), each turn's advantage on that turn's tokens. Either way the
batch's old and reference log-probs are taken once, before the first update (`loss.collect`), and the
same update (`loss.ppo_update`) runs, so the ratio and the clip are real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from wren.exceptions import ConfigError
from wren.learn.data.episodes import Episode
from wren.learn.data.rewards import RewardConfig, episode_return
from wren.learn.data.tokenize import IGNORE, tokenize_conversation
from wren.learn.data.windows import normalise
from wren.learn.train.rl.loss import (
    RLConfig,
    RolloutBatch,
    collect,
    group_advantages,
    ppo_update,
    token_advantages,
    turn_advantages,
)
from wren.serve.training_dir import (
    SMALL_LORA,
    LoraSettings,
    adapted_model,
    load_tokenizer,
    require_training_stack,
)
from wren.validation import StrictModel


class RLIterationConfig(StrictModel):
    """One GRPO or PPO iteration over judged episodes."""

    method: Literal["grpo", "ppo"] = "grpo"
    """grpo (group-relative advantages per task) or ppo (GAE per turn with the value model)."""
    value: str = ""
    """Value model directory (`wren learn value`), which PPO needs."""
    model: str
    """Training directory of the policy's base model."""
    output: str
    """Directory for the LoRA adapter and rl_log.json."""
    rl: RLConfig = Field(default_factory=RLConfig)
    """Clip range, KL weight, epochs, learning rate."""
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    """How an episode's return is made of the registered rewards."""
    max_length: int = 2048
    """Tokens kept of each episode."""
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings(**SMALL_LORA))
    """The adapter (rank 8 on the attention's q and v projections unless set)."""
    seed: int = 0
    """Seed of the LoRA's initialisation."""


def rl_records(episodes: list[Episode], rewards: RewardConfig) -> list[dict[str, Any]]:
    """Per episode: its messages (roles made to alternate, as chat templates require), its return
    and its group (the task). Every reply is an action here, those that broke the format included:
    SFT leaves them out (export.marked), but RL must see them for their penalty to lower them."""
    return [
        {"messages": normalise(e.messages), "reward": episode_return(e, rewards), "group": e.instance_id}
        for e in episodes
    ]


def rollout_batch(
    tokenizer: Any,
    records: list[dict[str, Any]],
    max_length: int,
    per_turn: list[list[float]] | None = None,
) -> RolloutBatch:
    """Token ids, the policy's own tokens as the action mask, and the advantages: group-relative
    (GRPO), or with `per_turn` each assistant turn's own on its tokens (PPO)."""
    import torch

    rows = [tokenize_conversation(tokenizer, r["messages"], max_length, with_turns=True) for r in records]
    width = max(len(r["input_ids"]) for r in rows)
    pad = tokenizer.pad_token_id

    def padded(key: str, fill: int) -> Any:
        return torch.tensor([r[key] + [fill] * (width - len(r[key])) for r in rows])

    ids = padded("input_ids", pad)
    attention = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
    action = (padded("labels", IGNORE) != IGNORE).long()
    if not action.any():
        raise ConfigError(
            f"learn rl: no episode has a trained assistant token within max_length {max_length} "
            "(raise max_length: the prompt alone may be longer)"
        )
    if per_turn is None:
        advantages = group_advantages([float(r["reward"]) for r in records], [r["group"] for r in records])
        return RolloutBatch(ids, attention, action, token_advantages(advantages, action))
    return RolloutBatch(ids, attention, action, turn_advantages(per_turn, padded("turn_ids", -1)) * action)


def _ppo_advantages(
    records: list[dict[str, Any]], config: RLIterationConfig
) -> tuple[list[list[float]], dict]:
    """Per-turn GAE advantages from the value model (loaded here, dropped before the policy loads)."""
    from wren.learn.train.rl.critic import episode_advantages
    from wren.search.value import ValueModel

    if not config.value:
        raise ConfigError("learn rl: method ppo needs a value model (--value DIR, from `wren learn value`)")
    if not (Path(config.value) / "value_model.json").is_file():
        raise ConfigError(
            f"learn rl: --value {config.value} is not a value model directory (no value_model.json)"
        )
    value_fn = ValueModel.load(config.value)
    value_fn.model.eval()
    per_turn, values = episode_advantages(records, value_fn, config.rl)
    flat_v = [v for vs in values for v in vs]
    flat_a = [a for adv in per_turn for a in adv]
    stats = {
        "turns": len(flat_v),
        "mean_value": sum(flat_v) / len(flat_v) if flat_v else 0.0,
        "mean_abs_advantage": sum(abs(a) for a in flat_a) / len(flat_a) if flat_a else 0.0,
    }
    return per_turn, stats


def rl_iteration(records: list[dict[str, Any]], config: RLIterationConfig) -> dict[str, Any]:
    """Advantages (GRPO or PPO), collect, update for `rl.epochs` steps, save the adapter; the per-step stats."""
    require_training_stack()
    import torch

    if not records:
        raise ValueError("no episodes to learn from")
    torch.manual_seed(config.seed)
    started = time.monotonic()
    per_turn, extra = _ppo_advantages(records, config) if config.method == "ppo" else (None, {})
    tokenizer = load_tokenizer(config.model)
    out = Path(config.output)
    policy = adapted_model(config.model, config.lora, out)  # a later iteration continues the adapter
    batch = collect(policy, rollout_batch(tokenizer, records, config.max_length, per_turn))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.rl.lr)
    history = ppo_update(policy, optimizer, batch, config.rl)
    policy.save_pretrained(str(out))
    rewards = [float(r["reward"]) for r in records]
    log = {
        "method": config.method,
        "episodes": len(records),
        "groups": len({r["group"] for r in records}),
        "mean_reward": sum(rewards) / len(rewards),
        **extra,
        "steps": [s.__dict__ for s in history],
        "seconds": round(time.monotonic() - started, 2),
    }
    logs_path = out / "rl_log.json"
    previous = json.loads(logs_path.read_text()) if logs_path.is_file() else []
    logs_path.write_text(json.dumps([*previous, log], indent=1))
    return log


def iteration_summary(log: dict[str, Any], output: str | Path) -> str:
    """One line on an RL iteration: episodes, reward, and its last update's ratio, clipping and KL."""
    last = log["steps"][-1]
    return (
        f"rl ({log['method']}): {log['episodes']} episodes in {log['groups']} groups, "
        f"mean reward {log['mean_reward']:.3f}; "
        f"last step ratio deviation {last['ratio_max_deviation']:.3f}, clipped {last['clip_fraction']:.1%}, "
        f"KL {last['kl']:.4f}; adapter in {output}"
    )
