"""Reinforcement learning over agent episodes: the clipped policy loss, GRPO and PPO iterations,
the critic's advantages and the value model's training."""
