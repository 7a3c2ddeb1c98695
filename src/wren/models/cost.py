"""Prices per token, from config or LiteLLM's price table, without importing LiteLLM.

A model with no price (every local SLM) costs 0; that is logged once per model, never an error.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import threading
from pathlib import Path

logger = logging.getLogger("wren.models.cost")
_warned: set[str] = set()
_lock = threading.Lock()


@functools.cache
def price_table() -> dict[str, dict]:
    """LiteLLM's bundled price table (read from its JSON file; importing LiteLLM costs seconds)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def lookup_price(name: str) -> tuple[float, float] | None:
    """(input, output) dollars per token for a LiteLLM model name, or None when unpriced."""
    table = price_table()
    candidates = [name, name.split("/", 1)[-1], name.rsplit("/", 1)[-1]]
    for candidate in candidates:
        entry = table.get(candidate)
        if entry and "input_cost_per_token" in entry:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0))
    return None


class CostCalculator:
    """Turns token counts into dollars for one model."""

    def __init__(self, name: str, input_cost: float | None, output_cost: float | None, *, local: bool):
        self.name = name
        if input_cost is not None or output_cost is not None:
            self.prices: tuple[float, float] | None = (input_cost or 0.0, output_cost or 0.0)
        else:
            # Local servers reuse public model names, but their calls cost nothing.
            self.prices = None if local else lookup_price(name)

    def __call__(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self.prices is None:
            with _lock:
                if self.name not in _warned:
                    _warned.add(self.name)
                    logger.info("no price known for model %r: its calls are counted as costing 0", self.name)
            return 0.0
        return prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]
