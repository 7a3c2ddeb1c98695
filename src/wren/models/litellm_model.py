"""The model for any LiteLLM provider, with a direct client for OpenAI-compatible servers."""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import logging
import os
import time
from typing import Any
from urllib.parse import urlparse

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from wren.models.config import ModelConfig
from wren.models.constrain import Constraint
from wren.models.cost import CostCalculator
from wren.models.errors import ContextWindowExceeded, PermanentModelError, RetryableModelError
from wren.models.stats import GLOBAL_STATS
from wren.models.tokens import EXTRA_REQUEST_FIELDS, REQUEST_FIELDS, reply_tokens

logger = logging.getLogger("wren.models")

# LiteLLM prefixes whose endpoint speaks the OpenAI chat API at api_base.
_OPENAI_COMPATIBLE = {
    "openai",
    "hosted_vllm",
    "custom_openai",
    "sglang",
    "llamacpp",
    "lm_studio",
    "ollama_chat",
    "vllm",
}
# Providers with an API of their own, which only LiteLLM speaks.
_NATIVE_PROVIDERS = {
    "anthropic", "gemini", "vertex_ai", "bedrock", "azure", "azure_ai", "cohere", "ollama", "huggingface",
    "replicate", "together_ai", "groq", "mistral", "deepseek", "openrouter", "fireworks_ai", "xai", "cerebras",
    "databricks", "sagemaker", "watsonx", "perplexity", "deepinfra", "ai21", "nvidia_nim", "palm",
}  # fmt: skip
_LOCAL_PROVIDERS = {"hosted_vllm", "ollama", "ollama_chat", "llamacpp", "lm_studio", "sglang", "vllm"}


def _is_local_url(url: str | None) -> bool:
    host = urlparse(url or "").hostname or ""
    if host in ("localhost", "") and url:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith(".local") or host.endswith(".internal")
    return address.is_loopback or address.is_private or address.is_link_local


@functools.cache
def _has_mcp() -> bool:
    return importlib.util.find_spec("mcp") is not None


def import_litellm() -> Any:
    """LiteLLM, told to use its bundled price table instead of fetching one over the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def reasoning_params(config: ModelConfig) -> dict[str, Any]:
    """Request fields for the thinking preset of `config`."""
    preset = config.reasoning
    if preset is None:
        return {}
    if config.name.startswith("openrouter/") or "openrouter.ai" in (config.api_base or ""):
        if preset == "disabled":
            return {"reasoning": {"enabled": False}}
        return {"reasoning": {"effort": preset, "enabled": True, "exclude": False}}
    if preset == "disabled":
        # Local chat templates (Qwen3 and kin) switch thinking off through this flag.
        extra = {"chat_template_kwargs": {"enable_thinking": False}} if config.api_base else {}
        return {"reasoning_effort": "none", **extra}
    return {"reasoning_effort": preset}


class LitellmModel:
    """Queries one model; retries with backoff, falls back to other models, tracks cost and tokens."""

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any):
        self.config = config or ModelConfig(**kwargs)
        prefix, sep, rest = self.config.name.partition("/")
        self.provider = prefix if sep else ""
        # The name the server knows: without LiteLLM's routing prefix ("hosted_vllm/Org/M" -> "Org/M").
        self.bare_name = rest if self.provider in _OPENAI_COMPATIBLE else self.config.name
        self.local = self.provider in _LOCAL_PROVIDERS or _is_local_url(self.config.api_base)
        self.cost_of = CostCalculator(
            self.config.name,
            self.config.input_cost_per_token,
            self.config.output_cost_per_token,
            local=self.local,
        )
        self.use_direct = self.config.client == "direct" or (
            self.config.client == "auto"
            and bool(self.config.api_base)
            and self.provider not in _NATIVE_PROVIDERS
        )
        self._client = None
        self.constraint = Constraint(self.config.constrain, self.config.constrain_form, self.config.api_base)
        self._fallbacks: list[LitellmModel] | None = None
        self.program_id: str | None = None
        self.cost = 0.0
        self.n_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.last_prompt_tokens = 0
        self._counted_messages = 0  # messages that the last call's prompt_tokens covered

    # -- requests -----------------------------------------------------------------------------

    def _body(
        self, tools: list[dict] | None, temperature: float | None = None, draw: int = 0
    ) -> dict[str, Any]:
        c = self.config
        body: dict[str, Any] = {}
        temperature = c.temperature if temperature is None else temperature
        if temperature is not None:
            body["temperature"] = temperature
        if c.top_p is not None:
            body["top_p"] = c.top_p
        if c.max_output_tokens is not None:
            body["max_tokens"] = c.max_output_tokens
        if tools:
            body["tools"] = tools
        if c.logprobs:
            body.update(REQUEST_FIELDS)
        body.update(reasoning_params(c))
        body.update(c.completion_kwargs)
        if draw and isinstance(body.get("seed"), int):
            # A fixed seed makes the same prompt give the same reply: a new draw needs a new seed.
            body["seed"] += draw
        constraint = self.constraint.fields(tools=bool(tools))
        if c.logprobs and c.api_base:
            constraint = {**EXTRA_REQUEST_FIELDS, **constraint}
        if constraint:
            # In extra_body so that LiteLLM passes the server-specific fields through untouched.
            body["extra_body"] = {**constraint, **(body.get("extra_body") or {})}
        return body

    def _headers(self) -> dict[str, str]:
        return {"X-Program-Id": self.program_id} if self.program_id else {}

    def _query_direct(
        self, messages: list[dict], tools: list[dict] | None, temperature: float | None = None, draw: int = 0
    ) -> dict:
        if self._client is None:
            from wren.models.openai_client import OpenAICompatibleClient

            self._client = OpenAICompatibleClient(
                self.config.api_base or "",
                api_key=self.config.resolved_api_key(),
                headers=self.config.headers,
                timeout=self.config.timeout,
            )
        body = {"model": self.bare_name or self.config.name, **self._body(tools, temperature, draw)}
        extra_body = body.pop("extra_body", None) or {}
        body.update(extra_body)
        if self.program_id:
            # Program-aware gateways read the id from the body as well as the header; self-hosted
            # OpenAI-compatible servers ignore the extra key (hosted APIs, via LiteLLM, never get it).
            body.setdefault("program_id", self.program_id)
        return self._client.chat(messages, body, self._headers())

    def _query_litellm(
        self, messages: list[dict], tools: list[dict] | None, temperature: float | None = None, draw: int = 0
    ) -> dict:
        litellm = import_litellm()
        c = self.config
        kwargs = self._body(tools, temperature, draw)
        if tools and not _has_mcp():
            # LiteLLM imports its MCP gateway (an optional dependency) whenever tools are passed.
            kwargs["_skip_mcp_handler"] = True
        wire = [{k: v for k, v in m.items() if k != "extra"} for m in messages]
        try:
            response = litellm.completion(
                model=c.name,
                messages=wire,
                api_base=c.api_base,
                # OpenAI-compatible local servers take no key, but LiteLLM's openai client insists on one.
                api_key=c.resolved_api_key() or ("none" if c.api_base else None),
                timeout=c.timeout,
                num_retries=0,
                extra_headers={**c.headers, **self._headers()} or None,
                drop_params=True,
                **kwargs,
            )
        except litellm.ContextWindowExceededError as e:
            raise ContextWindowExceeded(str(e), kind="context_window") from e
        except (
            litellm.AuthenticationError,
            litellm.PermissionDeniedError,
            litellm.NotFoundError,
            litellm.BadRequestError,
            litellm.UnsupportedParamsError,
        ) as e:
            raise PermanentModelError(
                str(e), status=getattr(e, "status_code", None), kind=type(e).__name__
            ) from e
        except (
            litellm.RateLimitError,
            litellm.APIConnectionError,
            litellm.Timeout,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
            litellm.APIError,
        ) as e:
            raise RetryableModelError(f"{type(e).__name__}: {e}") from e
        return response.model_dump()

    def _attempts(
        self, messages: list[dict], tools: list[dict] | None, temperature: float | None = None, draw: int = 0
    ) -> dict:
        c = self.config
        retrying = Retrying(
            stop=stop_after_attempt(max(c.retries, 1)),
            wait=wait_exponential(multiplier=c.retry_wait, max=c.retry_max_wait),
            retry=retry_if_exception_type(RetryableModelError),
            reraise=True,
            before_sleep=lambda s: logger.warning(
                "model %s: attempt %d failed (%s); retrying", c.name, s.attempt_number, s.outcome.exception()
            ),
        )
        query = self._query_direct if self.use_direct else self._query_litellm
        return retrying(query, messages, tools, temperature, draw)

    def _check_input_budget(self, messages: list[dict]) -> None:
        limit = self.config.max_input_tokens
        if not limit:
            return
        # The last call's prompt tokens plus ~4 characters a token for what came after it.
        counted = self._counted_messages if self.last_prompt_tokens else 0
        new_chars = sum(len(str(m.get("content") or "")) for m in messages[counted:])
        estimate = self.last_prompt_tokens + new_chars // 4
        if estimate > limit:
            raise ContextWindowExceeded(
                f"prompt of about {estimate} tokens exceeds max_input_tokens={limit}", kind="context_window"
            )

    def query(
        self,
        messages: list[dict],
        tools: list[dict] | None = None,
        *,
        temperature: float | None = None,
        draw: int = 0,
        **kwargs: Any,
    ) -> dict:
        """One assistant message for `messages`; `extra` holds cost, tokens, latency, model.
        `temperature` samples this call at that temperature instead of the config's (fallback
        models keep their own); `draw` > 0 asks for another sample of a prompt already answered
        (a configured `seed` is moved on by it)."""
        self._check_input_budget(messages)
        start = time.perf_counter()
        try:
            response = self._attempts(messages, tools, temperature, draw)
            model = self
        except RetryableModelError as error:
            if not self.config.fallbacks:
                raise
            response, model = self._try_fallbacks(messages, tools, error)
        latency = time.perf_counter() - start
        return model._record(response, latency, len(messages), owner=self)

    def _try_fallbacks(
        self, messages: list[dict], tools: list[dict] | None, error: RetryableModelError
    ) -> tuple[dict, LitellmModel]:
        if self._fallbacks is None:
            from wren.models import model_config_from

            self._fallbacks = [LitellmModel(model_config_from(f)) for f in self.config.fallbacks]
        last: Exception = error
        for fallback in self._fallbacks:
            fallback.program_id = self.program_id
            try:
                logger.warning("model %s failed; falling back to %s", self.config.name, fallback.config.name)
                return fallback._attempts(messages, tools), fallback
            except RetryableModelError as e:
                last = e
        raise last

    def _record(self, response: dict, latency: float, n_messages: int, *, owner: LitellmModel) -> dict:
        choice = (response.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        # Prompt tokens the server took from its prefix cache (OpenAI's field; llama.cpp and vLLM fill it).
        cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        cost = self.cost_of(prompt_tokens, completion_tokens)
        owner.cost += cost
        owner.n_calls += 1
        owner.prompt_tokens += prompt_tokens
        owner.completion_tokens += completion_tokens
        owner.last_prompt_tokens = prompt_tokens
        owner._counted_messages = n_messages
        GLOBAL_STATS.add(cost)
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            out["tool_calls"] = [
                {"id": tc.get("id"), "type": "function", "function": dict(tc.get("function") or {})}
                for tc in message["tool_calls"]
            ]
        out["extra"] = {
            "cost": cost,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cached_tokens": cached_tokens,
            "latency": latency,
            "model": self.config.name,
            "finish_reason": choice.get("finish_reason"),
            **reply_tokens(response, choice),
        }
        return out

    def get_template_vars(self) -> dict[str, Any]:
        return self.config.public_dump() | {"n_model_calls": self.n_calls, "model_cost": self.cost}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
