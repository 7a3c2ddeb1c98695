"""What an evaluation of the loop measures: per-run rates, and their mean with a 95% t-interval over
sampling seeds."""

from __future__ import annotations

import statistics
from typing import Any

from wren.learn.data.export import ExportConfig
from wren.learn.data.rewards import episode_return

# Two-sided 95% Student t quantiles by degrees of freedom (n seeds - 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of its 95% t-interval over seeds (0 with one value)."""
    mean = statistics.fmean(values) if values else 0.0
    if len(values) < 2:
        return {"mean": mean, "ci95": 0.0, "n": len(values)}
    t = T95.get(len(values) - 1, 1.96)
    return {"mean": mean, "ci95": t * statistics.stdev(values) / len(values) ** 0.5, "n": len(values)}


def run_metrics(episodes: list[Any], n_tasks: int, export_config: ExportConfig) -> dict[str, float]:
    """Resolve rate, mean reward, submit rate, format-error rate and cut rate (replies that ran into
    the token limit) of one evaluation run."""
    replies = sum(e.n_steps for e in episodes)
    return {
        "resolve_rate": sum(e.resolved for e in episodes) / n_tasks if n_tasks else 0.0,
        "mean_reward": (
            sum(episode_return(e, export_config.rewards) for e in episodes) / n_tasks if n_tasks else 0.0
        ),
        "submit_rate": sum(e.submitted for e in episodes) / n_tasks if n_tasks else 0.0,
        "format_error_rate": sum(len(e.format_error_steps()) for e in episodes) / replies if replies else 0.0,
        "cut_rate": sum(len(e.cut_steps()) for e in episodes) / replies if replies else 0.0,
    }
