"""The terminal REPL of `wren run`: prompt_toolkit input with history, rich output as messages arrive."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from wren.ui.console import StepPrinter, console

PROMPT_STYLES = {
    "confirm": "bold yellow",
    "human": "bold magenta",
    "interrupt": "bold red",
    "new_task": "bold green",
    "limit": "bold red",
    "task": "bold green",
}
MULTILINE_HINT = "(multi-line: Esc then Enter sends; Up/Down walk the history)"


def history_path() -> Path:
    """Where typed answers are remembered across runs ($WREN_HOME, else ~/.cache/wren)."""
    home = Path(os.environ.get("WREN_HOME") or Path.home() / ".cache" / "wren")
    home.mkdir(parents=True, exist_ok=True)
    return home / "history"


class TerminalUser:
    """The person at the terminal: prompts with prompt_toolkit (history, editing), prints with rich."""

    def __init__(self, out: Console | None = None, history: str | Path | None = None):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        self.console = out or console
        shared = FileHistory(str(history or history_path()))
        self.session: Any = PromptSession(history=shared)
        self.multiline_session: Any = PromptSession(history=shared, multiline=True)

    def ask(self, prompt: str, *, kind: str) -> str:
        style = PROMPT_STYLES.get(kind, "bold")
        self.console.print(f"[{style}]{escape(prompt)}[/] [dim](/m multi-line)[/]")
        answer = _read(self.session, "> ")
        if answer.strip() == "/m":
            self.console.print(f"[dim]{MULTILINE_HINT}[/]")
            answer = _read(self.multiline_session, "… ")
        return answer

    def tell(self, text: str) -> None:
        self.console.print(f"[cyan]{escape(text)}[/]")


class LivePrinter(StepPrinter):
    """Prints each message as the agent adds it, so a proposed command is seen before it is confirmed."""

    def __init__(self, out: Console | None = None):
        super().__init__(out)
        self._status: Any = None

    def on_start(self, agent: Any) -> None:
        pass  # the opening messages were printed as they were added

    def on_step(self, agent: Any, record: dict[str, Any]) -> None:
        pass

    def on_message(self, agent: Any, message: dict) -> None:
        self._show(message, agent.n_steps)

    def on_model_call(self, agent: Any, phase: str) -> None:
        if phase == "start":
            self._status = self.console.status(f"step {agent.n_steps + 1}: waiting for the model …")
            self._status.start()
        elif self._status is not None:
            self._status.stop()
            self._status = None

    def on_mode(self, agent: Any, mode: str) -> None:
        pass  # the agent tells the user itself


def _read(session: Any, prompt: str) -> str:
    try:
        return session.prompt(prompt)
    except asyncio.CancelledError as e:
        # Ctrl-C that lands while prompt_toolkit is still starting its event loop surfaces as a
        # cancelled task; it is the same Ctrl-C the caller handles.
        raise KeyboardInterrupt from e
