"""Training: thin TRL/PEFT wiring for SFT and DPO (`finetune`), and reinforcement learning (`rl`)."""
