"""Widgets both Textual apps use: one chat message, with its commands and diffs coloured."""

from __future__ import annotations

import re

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from wren.trajectory import message_role, message_text

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL)
_MAX_CHARS = 60_000
SYNTAX_THEME = "monokai"
ROLE_CLASSES = {"assistant": "assistant", "human": "human", "exit": "exit", "system": "system"}


def clip(text: str, limit: int = _MAX_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n[... {len(text) - limit} characters not shown ...]\n{text[-limit // 2 :]}"


def looks_like_diff(text: str) -> bool:
    return bool(re.search(r"^(diff --git |--- a/|\+\+\+ b/|@@ )", text, re.MULTILINE))


def diff_renderable(diff: str) -> Syntax:
    """A unified diff with its additions, removals and hunk headers coloured."""
    return Syntax(
        clip(diff).rstrip("\n"), "diff", theme=SYNTAX_THEME, word_wrap=True, background_color="default"
    )


def _plain(text: str, highlight: str) -> Text:
    out = Text(text)
    if highlight:
        out.highlight_regex(re.compile(re.escape(highlight), re.IGNORECASE), "black on yellow")
    return out


def body_renderable(text: str, *, highlight: str = "") -> RenderableType:
    """Text with its fenced code blocks shown as coloured code (bash, diffs, ...)."""
    text = clip(text)
    parts: list[RenderableType] = []
    position = 0
    for match in _FENCE.finditer(text):
        if match.start() > position:
            parts.append(_plain(text[position : match.start()].strip("\n"), highlight))
        language, code = match.group(1).lower() or "text", match.group(2).rstrip("\n")
        if language in ("sh", "shell", "console"):
            language = "bash"
        if highlight and highlight.lower() in code.lower():
            parts.append(_plain(code, highlight))  # the match must be visible, so no syntax colours here
        else:
            parts.append(
                Syntax(code, language, theme=SYNTAX_THEME, word_wrap=True, background_color="default")
            )
        position = match.end()
    rest = text[position:].strip("\n")
    if rest or not parts:
        if not highlight and looks_like_diff(rest):
            parts.append(diff_renderable(rest))
        else:
            parts.append(_plain(rest, highlight))
    return Group(*parts)


def message_title(message: dict, step: int | None = None) -> str:
    role = message_role(message)
    extra = message.get("extra") or {}
    bits = [role.upper()]
    if step is not None and role in ("assistant", "human"):
        bits.append(f"step {step}")
    if role == "assistant" and extra.get("cost"):
        bits.append(f"${float(extra['cost']):.4f}")
    if role == "assistant" and (extra.get("prompt_tokens") or extra.get("completion_tokens")):
        bits.append(f"{extra.get('prompt_tokens', 0)}↑ {extra.get('completion_tokens', 0)}↓ tokens")
    if role == "exit" and extra.get("exit_status"):
        bits.append(str(extra["exit_status"]))
    return " · ".join(bits)


class MessageView(Vertical):
    """One message: a title bar and its body."""

    DEFAULT_CSS = """
    MessageView { height: auto; margin-bottom: 1; }
    MessageView > .title { background: $primary-darken-2; color: $text; padding: 0 1; text-style: bold; }
    MessageView.assistant > .title { background: $accent-darken-1; }
    MessageView.human > .title { background: $warning-darken-2; }
    MessageView.exit > .title { background: $success-darken-2; }
    MessageView.system > .title { background: $panel; }
    MessageView > .body { padding: 0 1; height: auto; background: $surface; }
    """

    def __init__(self, message: dict, *, step: int | None = None, highlight: str = ""):
        role = message_role(message)
        super().__init__(classes=ROLE_CLASSES.get(role, "other"))
        self.message = message
        self.step = step
        self.highlight = highlight

    def compose(self) -> ComposeResult:
        yield Static(message_title(self.message, self.step), classes="title")
        text = message_text(self.message)
        if message_role(self.message) == "exit":
            extra = self.message.get("extra") or {}
            text = extra.get("submission") or extra.get("reason") or text
        yield Static(body_renderable(text, highlight=self.highlight), classes="body")


def step_bindings(*, show_ends: bool) -> list[Binding]:
    """The keys of StepNavigation's actions; `show_ends`: list first and last in the footer."""
    return [
        Binding("h,left", "previous_step", "Prev step"),
        Binding("l,right", "next_step", "Next step"),
        Binding("0", "first_step", "First", show=show_ends),
        Binding("$", "last_step", "Last", show=show_ends),
        Binding("j,down", "scroll(3)", "Scroll", show=False),
        Binding("k,up", "scroll(-3)", "Scroll", show=False),
    ]


class StepNavigation:
    """Key actions that move through the steps of a run shown in `#messages` (h, l, 0, $, j, k; their
    keys are `step_bindings`).

    The class it is mixed into has `steps`, `i_step` and `go_to_step(i)`.
    """

    steps: list
    i_step: int

    def go_to_step(self, i: int) -> None:
        raise NotImplementedError

    def action_previous_step(self) -> None:
        self.go_to_step(self.i_step - 1)

    def action_next_step(self) -> None:
        self.go_to_step(self.i_step + 1)

    def action_first_step(self) -> None:
        self.go_to_step(0)

    def action_last_step(self) -> None:
        self.go_to_step(len(self.steps) - 1)

    def action_scroll(self, lines: int) -> None:
        container = self.query_one("#messages", VerticalScroll)  # type: ignore[attr-defined]
        container.scroll_to(y=container.scroll_target_y + lines, animate=False)
