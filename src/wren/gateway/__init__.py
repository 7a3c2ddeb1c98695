"""The gateway: one OpenAI-compatible endpoint in front of inference servers, scheduling programs."""
