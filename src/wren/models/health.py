"""Health checks: is each model's server up, and does it answer a one-token completion?"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from wren.models.config import ModelConfig


@dataclass
class CheckResult:
    """The outcome of checking one model."""

    name: str
    model: str
    endpoint: str
    ok: bool
    detail: str
    models_latency: float | None = None
    completion_latency: float | None = None


def check_model(name: str, config: ModelConfig, timeout: float = 15.0) -> CheckResult:
    """GET /models (for servers with an api_base), then a one-token completion through the real client."""
    from wren.models import model_class

    endpoint = config.api_base or "(provider default)"
    models_latency = None
    if config.api_base:
        url = config.api_base.rstrip("/") + "/models"
        headers = {}
        try:
            key = config.resolved_api_key()
        except Exception as e:
            return CheckResult(name, config.name, endpoint, False, str(e))
        if key:
            headers["Authorization"] = f"Bearer {key}"
        start = time.perf_counter()
        try:
            response = httpx.get(url, headers=headers, timeout=timeout)
        except httpx.HTTPError as e:
            return CheckResult(name, config.name, endpoint, False, f"unreachable: {type(e).__name__}: {e}")
        models_latency = time.perf_counter() - start
        if response.status_code != 200:
            return CheckResult(
                name,
                config.name,
                endpoint,
                False,
                f"/models answered HTTP {response.status_code}",
                models_latency,
            )
    probe = config.model_copy(
        update={
            "max_output_tokens": 1,
            "retries": 1,
            "timeout": timeout,
            "fallbacks": [],
            "max_input_tokens": None,
        }
    )
    model = model_class(probe.model_class)(probe)
    start = time.perf_counter()
    try:
        model.query([{"role": "user", "content": "Say OK."}])
    except Exception as e:
        return CheckResult(
            name, config.name, endpoint, False, f"completion failed: {e}"[:300], models_latency
        )
    finally:
        close = getattr(model, "close", None)
        if close:
            close()
    return CheckResult(name, config.name, endpoint, True, "ok", models_latency, time.perf_counter() - start)


def check_models(
    configs: dict[str, ModelConfig | dict[str, Any]], timeout: float = 15.0
) -> list[CheckResult]:
    """Check all models at once; results in the order given."""
    from wren.models import model_config_from

    resolved = {name: model_config_from(c) for name, c in configs.items()}
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(resolved)))) as pool:
        futures = [pool.submit(check_model, name, c, timeout) for name, c in resolved.items()]
        return [f.result() for f in futures]
