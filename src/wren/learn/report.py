"""The loop's report: `report.json`, and `report.html` with its plots as inline SVG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wren.learn.data.command_kinds import KINDS

# The loop's report, in its work directory (an HTML page beside it).
LOOP_REPORT = "report.json"

METRICS = {
    "resolve_rate": "Resolve rate",
    "mean_reward": "Mean reward",
    "submit_rate": "Submit rate",
    "format_error_rate": "Format-error rate",
    "cut_rate": "Replies cut at the token limit",
}
PLOT_WIDTH, PLOT_HEIGHT = 360, 160


def _bars(evaluations: dict[str, Any], metric: str) -> dict[str, Any]:
    """Bars (one per evaluated model) with 95% whiskers, scaled into the chart."""
    rows = [(name, e["summary"].get(metric, {"mean": 0.0, "ci95": 0.0})) for name, e in evaluations.items()]
    top = max([abs(s["mean"]) + s["ci95"] for _, s in rows] + [1e-9])
    width = PLOT_WIDTH / max(len(rows), 1)
    bars = []
    for i, (name, s) in enumerate(rows):
        height = PLOT_HEIGHT * abs(s["mean"]) / top
        whisker = PLOT_HEIGHT * s["ci95"] / top
        bars.append(
            {
                "name": name,
                "x": round(i * width + width * 0.2, 1),
                "w": round(width * 0.6, 1),
                "y": round(PLOT_HEIGHT - height, 1),
                "h": round(height, 1),
                "lo": round(min(PLOT_HEIGHT, PLOT_HEIGHT - height + whisker), 1),
                "hi": round(max(0.0, PLOT_HEIGHT - height - whisker), 1),
                "cx": round(i * width + width * 0.5, 1),
                "label": f"{s['mean']:.3f} ± {s['ci95']:.3f}",
            }
        )
    return {"metric": metric, "title": METRICS[metric], "bars": bars}


def line_points(values: list[float]) -> str:
    """SVG polyline points of `values` across the chart."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = PLOT_WIDTH / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{PLOT_HEIGHT - PLOT_HEIGHT * (v - lo) / span:.1f}" for i, v in enumerate(values)
    )


def rung_tables(report: dict[str, Any]) -> dict[str, Any]:
    """Resolve rate per rung: of the curriculum's rollouts per round (resolved of sampled runs, at
    the rungs the families were tried at) and of every model's held-out evaluation per rung."""
    levels = sorted({key for c in report.get("curriculum", []) for key in c["rungs"]})
    training = [
        {"round": c["round"], "cells": {k: c["rungs"].get(k) for k in levels}}
        for c in report.get("curriculum", [])
    ]
    held_out: dict[str, dict[str, Any]] = {}
    for name, evaluation in report["evaluations"].items():
        model, _, rung = name.rpartition("/")
        if model and rung[:1] == "L" and rung[1:].isdigit():
            held_out.setdefault(model, {})[rung] = evaluation["summary"].get("resolve_rate")
    held_levels = sorted({rung for cells in held_out.values() for rung in cells})
    return {"levels": levels, "training": training, "held_levels": held_levels, "held_out": held_out}


def render_html(report: dict[str, Any]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    jinja = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html", "j2"]),
    )
    rounds = report["rounds"]
    losses = [
        {
            "name": f"round {r['round']} {kind}",
            "points": line_points(r[f"{kind}_loss"]),
            "first": r[f"{kind}_loss"][0],
            "last": r[f"{kind}_loss"][-1],
        }
        for r in rounds
        for kind in ("sft", "dpo")
        if r[f"{kind}_loss"]
    ]
    probes = report.get("probes") or {}
    probe_kinds = [k for k in KINDS if any(k in p["summary"]["by_kind"] for p in probes.values())]
    rewards = [r["data"].get("rollout_reward") for r in rounds if r["data"].get("rollout_reward") is not None]
    return jinja.get_template("loop_report.html.j2").render(
        charts=[_bars(report["evaluations"], m) for m in METRICS],
        evaluations=report["evaluations"],
        metrics=METRICS,
        command_kinds=KINDS,
        losses=losses,
        probes=probes,
        probe_kinds=probe_kinds,
        reward_points=line_points(rewards),
        rewards=rewards,
        rungs=rung_tables(report),
        models=_served_models(report),
        stages=report["stage_seconds"],
        total_seconds=sum(report["stage_seconds"].values()),
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
    )


def _served_models(report: dict[str, Any]) -> dict[str, str]:
    """Each round's model as served (`base.gguf + adapter.gguf`), by round."""
    from wren.learn.served_model import ServedModel

    return {
        f"round-{r['round']}": str(ServedModel.from_dict(r["model"]))
        for r in report["rounds"]
        if r.get("model")
    }


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    path.with_suffix(".html").write_text(render_html(report))
    return path


def evaluation_lines(report: dict[str, Any]) -> list[str]:
    """Each evaluated model's metrics, mean ± 95% interval over seeds, one line per model."""
    return [
        f"{name}: "
        + ", ".join(f"{k} {v['mean']:.3f} ± {v['ci95']:.3f}" for k, v in evaluation["summary"].items())
        for name, evaluation in report["evaluations"].items()
    ]
