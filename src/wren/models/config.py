"""The model configuration: flat, so `-c model.api_base=URL` sets one field."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator

from wren.exceptions import ConfigError
from wren.validation import StrictModel

REDACTED = "***"
_SECRET_HEADER_WORDS = ("authorization", "key", "token", "secret", "cookie")


class ModelConfig(StrictModel):
    """How to reach one model and how to ask it."""

    name: str = ""
    """LiteLLM model name, e.g. `hosted_vllm/qwen2.5-coder-7b` or `openai/gpt-4o-mini` ('' = embedded SLM)."""
    model_class: str = "litellm"
    """Client class: litellm (any provider), scripted, replay, router, or a dotted path."""
    api_base: str | None = None
    """Base URL of an OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp, Ollama's /v1)."""
    api_key: str | None = None
    """API key; `$VAR` reads it from the environment. Never written to disk."""
    temperature: float | None = 0.0
    """Sampling temperature (None = the server's default)."""
    top_p: float | None = None
    """Nucleus sampling threshold (None = the server's default)."""
    max_input_tokens: int | None = None
    """Stop the run before a request whose prompt would exceed this many tokens."""
    max_output_tokens: int | None = None
    """Most tokens the model may generate per call."""
    completion_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra fields merged into every request body (e.g. stop, seed, extra_body)."""
    retries: int = 5
    """Attempts per call for retryable errors (rate limits, 5xx, connection errors)."""
    retry_wait: float = 1.0
    """Initial backoff in seconds between attempts; doubles each time."""
    retry_max_wait: float = 30.0
    """Longest backoff between attempts, in seconds."""
    timeout: float = 600.0
    """Seconds to wait for one response."""
    fallbacks: list[str | dict[str, Any]] = Field(default_factory=list)
    """Models (names or configs) tried in order when this one fails after its retries."""
    reasoning: Literal["disabled", "low", "medium", "high"] | None = None
    """Thinking preset: reasoning_effort for LiteLLM, the `reasoning` dict for OpenRouter."""
    client: Literal["auto", "direct", "litellm"] = "auto"
    """auto: a direct HTTP client for OpenAI-compatible api_base (measured faster), else LiteLLM."""
    input_cost_per_token: float | None = None
    """Price per prompt token in dollars; overrides LiteLLM's price table."""
    output_cost_per_token: float | None = None
    """Price per completion token in dollars; overrides LiteLLM's price table."""
    constrain: Literal["auto", "off", "grammar", "regex"] = "off"
    """Constrained output: replies are exactly one THOUGHT and one bash block (auto asks the server once)."""
    constrain_form: Literal["full", "fence"] = "full"
    """What the constraint fixes: the whole reply, or only the bash block's fences."""
    logprobs: bool = False
    """Ask the server for each reply's token ids and log-probabilities and keep them in the trajectory
    (`extra.token_ids`, `extra.logprobs`; see wren.models.tokens). Replies carry them whenever the
    server sends them; this asks for them."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers sent with every request."""
    outputs: list[Any] = Field(default_factory=list)
    """Scripted model only: the assistant outputs to return, in order."""
    trajectory: str | None = None
    """Replay model only: path of a trajectory whose model outputs are replayed."""
    models: list[str | dict[str, Any]] = Field(default_factory=list)
    """Router model only: the models to switch between (the first is the default, small one)."""
    router: dict[str, Any] = Field(default_factory=dict)
    """Router model only: switching rules (see wren.models.router)."""

    @field_validator("constrain", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML reads a bare `off` as false (and `on` as true).
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value

    def resolved_api_key(self) -> str | None:
        """The API key with a `$VAR` value read from the environment."""
        key = self.api_key
        if key and key.startswith("$"):
            var = key[1:].strip("{}")
            if var not in os.environ:
                raise ConfigError(f"model.api_key refers to ${var}, which is not set in the environment")
            return os.environ[var]
        return key

    def public_dump(self) -> dict[str, Any]:
        """The config as a dict with secrets replaced, safe to write to disk."""
        data = self.model_dump()
        if data.get("api_key") and not str(data["api_key"]).startswith("$"):
            data["api_key"] = REDACTED
        data["headers"] = {
            k: (REDACTED if any(w in k.lower() for w in _SECRET_HEADER_WORDS) else v)
            for k, v in self.headers.items()
        }
        return data

    def secret_values(self) -> list[str]:
        """Secret strings this config can put on the wire, to be scrubbed from anything saved."""
        values = []
        try:
            key = self.resolved_api_key()
        except ConfigError:
            key = None
        if key:
            values.append(key)
        values += [
            v for k, v in self.headers.items() if any(w in k.lower() for w in _SECRET_HEADER_WORDS) and v
        ]
        return values
