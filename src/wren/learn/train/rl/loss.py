"""PPO and GRPO over agent episodes: the math, kept small enough to check by hand.

The policy's log-probabilities are taken per token when the batch is collected and stored in it
(`collect`); every later epoch compares the updated policy with those stored numbers, so the ratio
is the true pi_new / pi_old. (Recomputing "old" log-probs from the current policy at each step makes
the ratio 1 and the clipping dead, which turns PPO into plain policy gradient, or into nothing.)

An episode is one token sequence (the whole conversation); `action_mask` marks the tokens the
policy produced (assistant replies). Advantages come per token: GRPO gives every action token of an
episode its group-relative advantage; PPO computes GAE over the episode's turns with a value model's
estimates and spreads each turn's advantage over that turn's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wren.exceptions import ConfigError
from wren.validation import StrictModel


class RLConfig(StrictModel):
    """Settings of a PPO/GRPO update."""

    clip_eps: float = 0.2
    """PPO clip range: the ratio is held within [1 - eps, 1 + eps] where that lowers the objective."""
    kl_coef: float = 0.05
    """Weight of the KL penalty to the reference policy."""
    epochs: int = 4
    """Passes over one collected batch (the ratio moves away from 1 after the first)."""
    lr: float = 1e-4
    """Learning rate of the optimizer."""
    gamma: float = 1.0
    """Discount per turn (GAE)."""
    lam: float = 0.95
    """GAE lambda."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError(
            "PPO/GRPO needs torch: install the learn extra (pip install 'wren-agent[learn]')"
        ) from e
    return torch


def token_logprobs(model: Any, input_ids: Any, attention_mask: Any, rows: int = 1) -> Any:
    """log pi(x_t | x_<t) for t = 1..T-1, shape [B, T-1], computed `rows` sequences at a time.

    A whole batch's logits do not fit: with a 262k-entry vocabulary, 8 sequences of 1,024 tokens
    are 8.6 GB in fp32 before log_softmax copies them (an RL iteration on 8 real episodes was
    killed for memory at 24 GB).
    """
    torch = _torch()
    parts = []
    for start in range(0, input_ids.shape[0], rows):
        ids, mask = input_ids[start : start + rows], attention_mask[start : start + rows]
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        parts.append(torch.gather(torch.log_softmax(logits, dim=-1), 2, ids[:, 1:, None]).squeeze(-1))
        del logits
    return torch.cat(parts)


def gae(
    rewards: list[float], values: list[float], gamma: float = 1.0, lam: float = 0.95
) -> tuple[list[float], list[float]]:
    """Generalised advantage estimates and returns for one episode of T turns.

    `values[t]` is V(s_t) for t < T; the state after the last turn is terminal (value 0).
    """
    if len(rewards) != len(values):
        raise ValueError(f"gae: {len(rewards)} rewards but {len(values)} values")
    advantages = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(values) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    returns = [a + v for a, v in zip(advantages, values, strict=True)]
    return advantages, returns


def group_advantages(
    rewards: list[float], groups: list[Any], eps: float = 1e-6, scale: bool = True
) -> list[float]:
    """GRPO: each reward minus its group's mean (divided by the group's std with `scale`)."""
    if len(rewards) != len(groups):
        raise ValueError(f"group_advantages: {len(rewards)} rewards but {len(groups)} group ids")
    by_group: dict[Any, list[float]] = {}
    for r, g in zip(rewards, groups, strict=True):
        by_group.setdefault(g, []).append(r)
    out = []
    for r, g in zip(rewards, groups, strict=True):
        members = by_group[g]
        mean = sum(members) / len(members)
        std = (sum((x - mean) ** 2 for x in members) / len(members)) ** 0.5
        out.append((r - mean) / (std + eps) if scale else r - mean)
    return out


@dataclass
class PolicyLossStats:
    """What one loss evaluation saw: how far the ratio moved and how often clipping engaged."""

    loss: float
    policy_loss: float
    kl: float
    ratio_mean: float
    ratio_max_deviation: float
    clip_fraction: float


def ppo_loss(
    new_logp: Any,
    old_logp: Any,
    advantages: Any,
    mask: Any,
    clip_eps: float,
    ref_logp: Any = None,
    kl_coef: float = 0.0,
) -> tuple[Any, PolicyLossStats]:
    """The clipped surrogate (negated, to minimise) with an optional KL penalty to the reference.

    All tensors are [B, T-1]; `mask` is 1 on the policy's own tokens. KL uses the k3 estimator
    exp(ref - new) - (ref - new) - 1, which is non-negative and unbiased.
    """
    torch = _torch()
    mask = mask.float()
    n = mask.sum().clamp(min=1.0)
    ratio = torch.exp(new_logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    policy_loss = -(torch.minimum(unclipped, clipped) * mask).sum() / n
    kl = torch.zeros((), device=new_logp.device)
    if ref_logp is not None:
        d = ref_logp - new_logp
        kl = ((torch.exp(d) - d - 1) * mask).sum() / n
    loss = policy_loss + kl_coef * kl
    with torch.no_grad():
        engaged = ((clipped < unclipped) & (mask > 0)).float().sum() / n
        on = mask > 0
        deviation = (ratio[on] - 1).abs().max().item() if on.any() else 0.0
        stats = PolicyLossStats(
            loss=loss.item(),
            policy_loss=policy_loss.item(),
            kl=kl.item(),
            ratio_mean=((ratio * mask).sum() / n).item(),
            ratio_max_deviation=deviation,
            clip_fraction=engaged.item(),
        )
    return loss, stats


@dataclass
class RolloutBatch:
    """Token sequences with what was fixed at collection: old and reference log-probs, advantages."""

    input_ids: Any
    attention_mask: Any
    action_mask: Any
    advantages: Any
    old_logprobs: Any = None
    ref_logprobs: Any = None


def collect(policy: Any, batch: RolloutBatch, reference: Any = None) -> RolloutBatch:
    """Store the policy's (and the reference's) per-token log-probs now, before any update.

    With a PEFT policy and no `reference`, the reference is the policy with its adapters disabled.
    """
    torch = _torch()
    with torch.no_grad():
        batch.old_logprobs = token_logprobs(policy, batch.input_ids, batch.attention_mask)
        if reference is not None:
            batch.ref_logprobs = token_logprobs(reference, batch.input_ids, batch.attention_mask)
        elif hasattr(policy, "disable_adapter"):
            with policy.disable_adapter():
                batch.ref_logprobs = token_logprobs(policy, batch.input_ids, batch.attention_mask)
    return batch


def ppo_update(policy: Any, optimizer: Any, batch: RolloutBatch, config: RLConfig) -> list[PolicyLossStats]:
    """`config.epochs` gradient steps on one collected batch; the stats of each step's loss."""
    torch = _torch()
    if batch.old_logprobs is None:
        raise ValueError("ppo_update needs a collected batch (old log-probs); call collect() first")
    mask = batch.action_mask[:, 1:]
    advantages = batch.advantages[:, 1:] if batch.advantages.dim() == 2 else batch.advantages[:, None]
    history = []
    policy.train()
    total = mask.float().sum().clamp(min=1.0)
    for _ in range(config.epochs):
        optimizer.zero_grad()
        # One sequence at a time, gradients accumulated: each slice's loss (a mean over its own
        # tokens) weighted by its share of the batch's tokens sums to the batch's loss.
        parts: list[tuple[float, PolicyLossStats]] = []
        for start in range(0, batch.input_ids.shape[0]):
            rows = slice(start, start + 1)
            share = (mask[rows].float().sum() / total).item()
            if share == 0.0:
                continue
            new_logp = token_logprobs(policy, batch.input_ids[rows], batch.attention_mask[rows])
            loss, stats = ppo_loss(
                new_logp,
                batch.old_logprobs[rows],
                advantages[rows],
                mask[rows],
                config.clip_eps,
                None if batch.ref_logprobs is None else batch.ref_logprobs[rows],
                config.kl_coef,
            )
            (loss * share).backward()
            parts.append((share, stats))
        torch.nn.utils.clip_grad_norm_(
            [p for p in policy.parameters() if p.requires_grad], config.max_grad_norm
        )
        optimizer.step()
        history.append(_combined(parts))
    return history


def _combined(parts: list[tuple[float, PolicyLossStats]]) -> PolicyLossStats:
    """The stats of a batch from its slices' stats, each weighted by its share of the tokens."""

    def mean(field: str) -> float:
        return sum(share * getattr(stats, field) for share, stats in parts)

    return PolicyLossStats(
        loss=mean("loss"),
        policy_loss=mean("policy_loss"),
        kl=mean("kl"),
        ratio_mean=mean("ratio_mean"),
        ratio_max_deviation=max((stats.ratio_max_deviation for _, stats in parts), default=0.0),
        clip_fraction=mean("clip_fraction"),
    )


def token_advantages(per_episode: list[float], action_mask: Any) -> Any:
    """GRPO: every action token of episode i gets advantage i; shape of `action_mask`."""
    torch = _torch()
    return torch.tensor(per_episode, dtype=torch.float32)[:, None] * action_mask.float()


def turn_advantages(per_turn: list[list[float]], turn_ids: Any) -> Any:
    """PPO: token j of episode i gets the advantage of the turn it belongs to (`turn_ids` -1 = none)."""
    torch = _torch()
    out = torch.zeros(turn_ids.shape, dtype=torch.float32)
    for i, turns in enumerate(per_turn):
        for t, a in enumerate(turns):
            out[i][turn_ids[i] == t] = a
    return out
