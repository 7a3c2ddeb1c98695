"""The HTML page of an evaluation: a chart of outcomes and per-repository rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {
    "resolved": "Resolved",
    "unresolved": "Unresolved",
    "patch_failed": "Patch failed",
    "error": "Error",
}
_BAR_MAX = 400


def render_html(summary: dict[str, Any]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    jinja = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html", "j2"]),
    )
    counts = {
        "resolved": summary["resolved_instances"],
        "unresolved": summary["unresolved_instances"],
        "patch_failed": summary["patch_failed_instances"],
        "error": summary["error_instances"],
    }
    most = max(counts.values()) or 1
    outcomes = [
        {"name": name, "label": LABELS[name], "count": count, "width": round(_BAR_MAX * count / most)}
        for name, count in counts.items()
    ]
    return jinja.get_template("report.html.j2").render(
        total=summary["total_instances"],
        submitted=summary["submitted_instances"],
        resolved=summary["resolved_instances"],
        rate=summary["resolved_rate"],
        outcomes=outcomes,
        chart_width=_BAR_MAX + 200,
        per_repo=summary["per_repo"],
        per_hint_level=summary.get("per_hint_level", {}),
        instances=summary.get("instances", {}),
    )


def write_html(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(summary))
    return path
