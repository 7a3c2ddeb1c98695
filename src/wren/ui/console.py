"""Showing a run on the terminal with rich: the shared console and the step printer (bash highlighted,
each step with its latency and tokens, few-shot turns not shown as steps)."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from wren.redact import redact

console = Console(stderr=False, highlight=False)

_BLOCK = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\r?\n(.*?)(?:\r?\n)?[ \t]*```", re.DOTALL)
_SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}


def _clip(text: str, limit: int = 2000) -> str:
    # Every message shown passes here: a command can print Wren's own environment.
    text = redact(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n[... {len(text) - limit} characters ...]\n{text[-limit // 2 :]}"


def render_reply(content: str) -> RenderableType:
    """A reply with each fenced block shown as highlighted code and no fence lines."""
    parts: list[RenderableType] = []
    last = 0
    for match in _BLOCK.finditer(content):
        prose = content[last : match.start()].strip("\n")
        if prose:
            parts.append(Text(_clip(prose)))
        lang = match.group(1).lower()
        parts.append(
            Syntax(_clip(match.group(2)), "bash" if lang in _SHELL_LANGS else lang, theme="ansi_dark")
        )
        last = match.end()
    rest = content[last:].strip("\n")
    if rest:
        parts.append(Text(_clip(rest)))
    return Group(*parts) if parts else Text("")


def step_title(step: int, extra: dict[str, Any]) -> str:
    """`step N · assistant · latency · prompt+completion tokens · cost`."""
    bits = [f"step {step}", "assistant"]
    if "latency" in extra:
        bits.append(f"{extra['latency']:.2f}s")
    if "prompt_tokens" in extra or "completion_tokens" in extra:
        bits.append(f"{extra.get('prompt_tokens', 0)}+{extra.get('completion_tokens', 0)} tokens")
    if extra.get("cost"):
        bits.append(f"${extra['cost']:.4f}")
    return " · ".join(bits)


def is_demonstration(message: dict) -> bool:
    return bool((message.get("extra") or {}).get("demonstration"))


class StepPrinter:
    """An agent hook that prints each message of each step as it is added."""

    def __init__(self, out: Console | None = None):
        self.console = out or console
        self._examples_noted = False

    def _show(self, message: dict, step: int) -> None:
        role = message.get("role", "")
        content = str(message.get("content") or "")
        if is_demonstration(message):
            # Few-shot turns from the config are not part of the run: one line says they are there.
            if not self._examples_noted:
                self._examples_noted = True
                self.console.print(
                    "[dim]few-shot examples from the agent config precede the task (not shown)[/]"
                )
            return
        if role == "assistant":
            extra = message.get("extra") or {}
            calls = message.get("tool_calls") or []
            body = render_reply(content)
            if calls:
                commands = [str((c.get("function") or {}).get("arguments")) for c in calls]
                body = Group(body, *(Syntax(_clip(c), "json", theme="ansi_dark") for c in commands))
            self.console.print(
                Panel(body, title=step_title(step, extra), border_style="cyan", title_align="left")
            )
        elif role in ("user", "tool"):
            title = "task" if step == 0 else f"step {step} · observation"
            self.console.print(
                Panel(Text(_clip(content)), title=title, border_style="green", title_align="left")
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
