"""What the commands print: the console and step printer (from ui/), and the model health table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wren.ui.console import StepPrinter, console

if TYPE_CHECKING:
    from wren.models.health import CheckResult

__all__ = ["StepPrinter", "console", "print_checks"]


def print_checks(results: list[CheckResult]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("name", "model", "endpoint", "status", "/models ms", "completion ms")
    for r in results:
        status = "[green]up[/green]" if r.ok else f"[red]down[/red] {escape(r.detail)}"
        ms = lambda v: f"{v * 1000:.0f}" if v is not None else "-"  # noqa: E731
        cells = (escape(r.name), escape(r.model), escape(r.endpoint))  # user text, not markup
        table.add_row(*cells, status, ms(r.models_latency), ms(r.completion_latency))
    console.print(table)
