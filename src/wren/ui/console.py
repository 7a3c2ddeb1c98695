"""Showing a run on the terminal with rich: the shared console and the step printer."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from wren.redact import redact

console = Console(stderr=False, highlight=False)


def _clip(text: str, limit: int = 2000) -> str:
    # Every message shown passes here: a command can print Wren's own environment.
    text = redact(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n[... {len(text) - limit} characters ...]\n{text[-limit // 2 :]}"


class StepPrinter:
    """An agent hook that prints each message of each step as it is added."""

    def __init__(self, out: Console | None = None):
        self.console = out or console

    def _show(self, message: dict, step: int) -> None:
        role = message.get("role", "")
        content = str(message.get("content") or "")
        if role == "assistant":
            extra = message.get("extra") or {}
            calls = message.get("tool_calls") or []
            body = content + "".join(f"\n[tool call] {c.get('function', {}).get('arguments')}" for c in calls)
            title = (
                f"step {step} · assistant · ${extra.get('cost', 0.0):.4f} · {extra.get('latency', 0.0):.2f}s"
            )
            self.console.print(Panel(Text(_clip(body)), title=title, border_style="cyan", title_align="left"))
        elif role in ("user", "tool"):
            self.console.print(
                Panel(
                    Text(_clip(content)),
                    title=f"step {step} · observation",
                    border_style="green",
                    title_align="left",
                )
            )
        elif role == "system":
            self.console.print(
                Panel(Text(_clip(content, 800)), title="system", border_style="dim", title_align="left")
            )
        elif role == "exit":
            status = (message.get("extra") or {}).get("exit_status", "")
            self.console.print(
                Panel(
                    Text(_clip(content)),
                    title=f"exit · {escape(status)}",
                    border_style="magenta",
                    title_align="left",
                )
            )

    def on_start(self, agent: Any) -> None:
        for message in agent.messages:
            self._show(message, 0)

    def on_step(self, agent: Any, record: dict[str, Any]) -> None:
        for message in record.get("messages", []):
            self._show(message, record.get("step", 0))
