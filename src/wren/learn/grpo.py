"""GRPO over agent episodes: judged runs -> group-relative advantages -> one collected batch ->
clipped updates of the policy's LoRA (`wren learn rl`).

Episodes of the same task form a group; each episode's return (the reward registry) minus its
group's mean, over the group's std, is the advantage of every token the policy produced in it (the
assistant turns, as the chat template renders them). The batch's old and reference log-probs are
taken once, before the first update (rl.collect), so the ratio and the clip are real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wren.learn.episodes import Episode
from wren.learn.export import marked
from wren.learn.rewards import RewardConfig, episode_return
from wren.learn.rl import RLConfig, RolloutBatch, collect, group_advantages, ppo_update, token_advantages
from wren.learn.tokenize import IGNORE, tokenize_conversation
from wren.learn.train import (
    SMALL_LORA,
    LoraSettings,
    _require_training_stack,
    load_model,
    load_tokenizer,
    lora_config,
)


class GRPOConfig(BaseModel):
    """One GRPO iteration over judged episodes."""

    model_config = ConfigDict(extra="forbid")

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
    """Per episode: its marked messages, its return and its group (the task)."""
    return [
        {"messages": marked(e), "reward": episode_return(e, rewards), "group": e.instance_id}
        for e in episodes
    ]


def rollout_batch(tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> RolloutBatch:
    """Token ids, the policy's own tokens as the action mask, and group-relative advantages."""
    import torch

    rows = [tokenize_conversation(tokenizer, r["messages"], max_length) for r in records]
    width = max(len(r["input_ids"]) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in rows])
    attention = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
    action = torch.tensor(
        [[int(t != IGNORE) for t in r["labels"]] + [0] * (width - len(r["labels"])) for r in rows]
    )
    advantages = group_advantages([float(r["reward"]) for r in records], [r["group"] for r in records])
    return RolloutBatch(ids, attention, action, token_advantages(advantages, action))


def grpo_iteration(records: list[dict[str, Any]], config: GRPOConfig) -> dict[str, Any]:
    """Collect, update for `rl.epochs` steps, save the adapter; the per-step stats."""
    _require_training_stack()
    import torch
    from peft import PeftModel, get_peft_model

    if not records:
        raise ValueError("no episodes to learn from")
    torch.manual_seed(config.seed)
    started = time.monotonic()
    tokenizer = load_tokenizer(config.model)
    base = load_model(config.model)
    out = Path(config.output)
    if (out / "adapter_config.json").is_file():  # a later iteration continues the same adapter
        policy = PeftModel.from_pretrained(base, str(out), is_trainable=True)
    else:
        lora = lora_config(config.lora)
        policy = get_peft_model(base, lora)
    batch = collect(policy, rollout_batch(tokenizer, records, config.max_length))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.rl.lr)
    history = ppo_update(policy, optimizer, batch, config.rl)
    policy.save_pretrained(str(out))
    rewards = [float(r["reward"]) for r in records]
    log = {
        "episodes": len(records),
        "groups": len({r["group"] for r in records}),
        "mean_reward": sum(rewards) / len(rewards),
        "steps": [s.__dict__ for s in history],
        "seconds": round(time.monotonic() - started, 2),
    }
    logs_path = out / "rl_log.json"
    previous = json.loads(logs_path.read_text()) if logs_path.is_file() else []
    logs_path.write_text(json.dumps([*previous, log], indent=1))
    return log
