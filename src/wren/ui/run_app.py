"""The Textual TUI of `wren run -v`.

The agent runs on a worker thread and talks to the interface only through thread-safe messages
(`post_message`) and, when it asks the person something, a queue of answers; the interface never waits
on the agent. Keys: c/y/u switch mode, h/l/0/$ move between steps, Ctrl+T switches single- and
multi-line input, Ctrl+C interrupts the agent, q quits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Input, Static, TextArea

from wren.agents.interactive import MODE_COMMANDS, InteractiveAgentConfig, UserStopped
from wren.redact import current_redactor
from wren.trajectory import pages
from wren.ui.widgets import MessageView, StepNavigation, step_bindings

_STOP = object()
_INTERRUPT = object()
MODE_KEYS = {mode: command for command, mode in MODE_COMMANDS.items()}
# Prompts where a mode key is answered as the slash command (the agent acts on it right away).
_MODE_ANSWERABLE = ("confirm", "human", "new_task", "interrupt")
PROMPT_HINTS = {
    "confirm": "Enter runs the command · type a reason to reject it · y yolo · u human",
    "human": "type a command to run · c confirm · y yolo",
    "interrupt": "type a message for the model · Enter goes on · /q stops",
    "new_task": "type a new task · Enter finishes",
    "limit": "type a new limit · Enter stops",
}


class AgentEvent(Message):
    """Something happened in the agent thread."""

    def __init__(self, kind: str, payload: Any = None, *, cost: float = 0.0, n_steps: int = 0):
        super().__init__()
        self.kind, self.payload, self.cost, self.n_steps = kind, payload, cost, n_steps


class Bridge:
    """Agent hook and user in one: forwards the agent's events to the app and waits for its answers."""

    def __init__(self, app: RunApp):
        self.app = app
        self.answers: queue.Queue[Any] = queue.Queue()
        self.stopping = False
        self.agent: Any = None

    def _post(self, kind: str, payload: Any = None, agent: Any = None) -> None:
        agent = agent or self.agent
        cost = getattr(agent, "cost", 0.0)
        self.app.post_message(AgentEvent(kind, payload, cost=cost, n_steps=getattr(agent, "n_steps", 0)))

    # hook
    def on_start(self, agent: Any) -> None:
        self.agent = agent
        self._post("start", None, agent)

    def on_message(self, agent: Any, message: dict) -> None:
        self.agent = agent
        self._post("message", current_redactor().data(message), agent)

    def on_model_call(self, agent: Any, phase: str) -> None:
        self._post(
            "phase", f"step {agent.n_steps + 1}: waiting for the model" if phase == "start" else "running"
        )

    def on_mode(self, agent: Any, mode: str) -> None:
        self._post("mode", mode)

    def on_finish(self, agent: Any, result: Any) -> None:
        self._post("finish", result)

    # user
    def ask(self, prompt: str, *, kind: str) -> str:
        if self.stopping:
            raise UserStopped("the interface was closed")
        self._post("ask", (prompt, kind))
        answer = self.answers.get()
        if answer is _STOP:
            raise UserStopped("the interface was closed")
        if answer is _INTERRUPT:
            raise KeyboardInterrupt
        return answer

    def tell(self, text: str) -> None:
        self._post("tell", text)

    def stop(self) -> None:
        self.stopping = True
        self.answers.put(_STOP)
        if self.agent is not None:
            self.agent.request_interrupt()


class HistoryInput(Input):
    """A one-line input whose Up/Down keys walk the answers given before."""

    BINDINGS = [Binding("up", "older", show=False), Binding("down", "newer", show=False)]

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.history: list[str] = []
        self._index = 0

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._index = len(self.history)

    def action_older(self) -> None:
        if self._index > 0:
            self._index -= 1
            self.value = self.history[self._index]

    def action_newer(self) -> None:
        self._index = min(self._index + 1, len(self.history))
        self.value = self.history[self._index] if self._index < len(self.history) else ""


class RunApp(StepNavigation, App):
    """One agent run, live: its steps, cost and tokens, and a prompt when the agent asks."""

    TITLE = "wren run"
    CSS = """
    #status { height: 1; background: $boost; color: $text; padding: 0 1; }
    #messages { height: 1fr; padding: 0 1; }
    #prompt { height: auto; max-height: 50%; border-top: solid $warning; padding: 0 1; display: none; }
    #prompt.asking { display: block; }
    #prompt-label { color: $warning; text-style: bold; }
    #prompt-hint { color: $text-muted; }
    #multi { height: 8; display: none; }
    #prompt.multiline #multi { display: block; }
    #prompt.multiline #line { display: none; }
    """
    BINDINGS = [
        Binding("c", "set_mode('confirm')", "Confirm"),
        Binding("y", "set_mode('yolo')", "YOLO"),
        Binding("u", "set_mode('human')", "Human"),
        *step_bindings(show_ends=True),
        Binding("i", "focus_input", "Answer", show=False),
        Binding("escape", "leave_input", "Leave input", show=False),
        Binding("ctrl+t", "toggle_input_mode", "Input mode", priority=True),
        Binding("ctrl+s", "send_multiline", "Send", show=False, priority=True),
        Binding("ctrl+c", "interrupt", "Interrupt", priority=True),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        start: Callable[[list[Any], Any], Any],
        *,
        config: InteractiveAgentConfig,
        task: str = "",
        ask: bool = True,
    ):
        """`start(hooks, user)` runs the agent to its end (on the worker thread) and returns its result."""
        super().__init__()
        self.start_run = start
        self.agent_config = config
        self.task_text = task
        self.asks = ask
        self.bridge = Bridge(self)
        self.messages: list[dict] = []
        self.steps: list[list[dict]] = []
        self.i_step = 0
        self.follow = True
        self.cost = 0.0
        self.n_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.phase = "starting"
        self.pending: str | None = None
        self.multiline = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None

    # --- layout ---

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        yield VerticalScroll(id="messages")
        with Vertical(id="prompt"):
            yield Static(id="prompt-label")
            yield Static(id="prompt-hint")
            yield HistoryInput(
                id="line", placeholder="Enter sends · Ctrl+T multi-line · Esc leaves the input"
            )
            yield TextArea(id="multi")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.task_text.strip().splitlines()[0][:80] if self.task_text.strip() else ""
        self.update_status()
        self.thread = threading.Thread(target=self._work, name="wren-agent", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            self.result = self.start_run([self.bridge], self.bridge if self.asks else None)
        except BaseException as e:  # shown in the interface and re-raised by wait_result
            self.error = e
            self.post_message(AgentEvent("error", f"{type(e).__name__}: {e}"))
        finally:
            self.finished.set()

    def wait_result(self, timeout: float = 30.0) -> Any:
        """The run's result once the worker ended (None if it is still running after `timeout`)."""
        self.finished.wait(timeout)
        if self.error is not None and not isinstance(self.error, UserStopped):
            raise self.error
        return self.result

    # --- events from the agent thread ---

    def on_agent_event(self, event: AgentEvent) -> None:
        self.cost = event.cost
        if event.kind == "message":
            self.add_message(event.payload)
        elif event.kind == "phase":
            self.phase = event.payload
        elif event.kind == "mode":
            self.refresh_bindings()
        elif event.kind == "ask":
            self.show_prompt(*event.payload)
        elif event.kind == "tell":
            self.notify(event.payload, timeout=4)
        elif event.kind == "finish":
            self.phase = f"finished: {event.payload.exit_status} · q quits"
            self.hide_prompt()
            self.notify(f"The run ended: {event.payload.exit_status}", timeout=6)
        elif event.kind == "error":
            self.phase = f"error: {event.payload} · q quits"
            self.hide_prompt()
            self.notify(event.payload, severity="error", timeout=10)
        self.update_status()

    def add_message(self, message: dict) -> None:
        self.messages.append(message)
        extra = message.get("extra") or {}
        if message.get("role") == "assistant" and not extra.get(
            "demonstration"
        ):  # few-shot turns made no call
            self.n_calls += 1
            self.prompt_tokens += int(extra.get("prompt_tokens") or 0)
            self.completion_tokens += int(extra.get("completion_tokens") or 0)
        before = len(self.steps)
        self.steps = pages(self.messages, demonstrations=len(self.agent_config.demonstrations))
        if self.follow:
            self.i_step = len(self.steps) - 1
            if len(self.steps) != before:
                self.show_step()
            else:
                self.query_one("#messages", VerticalScroll).mount(MessageView(message, step=self.i_step))
                self.query_one("#messages", VerticalScroll).scroll_end(animate=False)
        elif self.i_step == len(self.steps) - 1:
            self.show_step()

    # --- showing ---

    @property
    def mode(self) -> str:
        return self.agent_config.mode

    def update_status(self) -> None:
        n = len(self.steps)
        where = f"step {self.i_step}/{max(n - 1, 0)}" + (" (live)" if self.follow else "")
        tokens = f"{self.prompt_tokens:,}↑ {self.completion_tokens:,}↓ tokens"
        waiting = " · waiting for you" if self.pending else ""
        text = f"{where} │ mode {self.mode} │ {self.n_calls} calls │ ${self.cost:.4f} │ {tokens} │ {self.phase}{waiting}"
        self.query_one("#status", Static).update(text)
        self.title = f"wren run · {self.mode}"

    def show_step(self) -> None:
        container = self.query_one("#messages", VerticalScroll)
        container.remove_children()
        if self.steps:
            container.mount_all([MessageView(m, step=self.i_step) for m in self.steps[self.i_step]])
        if self.follow:
            container.scroll_end(animate=False)
        else:
            container.scroll_home(animate=False)
        self.update_status()

    def go_to_step(self, index: int) -> None:
        if not self.steps:
            return
        self.i_step = max(0, min(index, len(self.steps) - 1))
        self.follow = self.i_step == len(self.steps) - 1
        self.show_step()

    def show_prompt(self, prompt: str, kind: str) -> None:
        self.pending = kind
        self.query_one("#prompt-label", Static).update(prompt)
        self.query_one("#prompt-hint", Static).update(PROMPT_HINTS.get(kind, ""))
        self.query_one("#prompt").add_class("asking")
        if not self.follow:
            self.go_to_step(len(self.steps) - 1)
        self.action_focus_input()

    def hide_prompt(self) -> None:
        self.pending = None
        self.query_one("#prompt").remove_class("asking")
        self.query_one("#messages").focus()

    # --- answering ---

    def answer(self, value: Any) -> None:
        if self.pending is None:
            return
        if isinstance(value, str):
            self.query_one("#line", HistoryInput).remember(value)
        self.hide_prompt()
        self.bridge.answers.put(value)
        self.update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value
        event.input.value = ""
        self.answer(value)

    def action_send_multiline(self) -> None:
        area = self.query_one("#multi", TextArea)
        if self.multiline and self.pending:
            value = area.text
            area.text = ""
            self.answer(value)

    def action_focus_input(self) -> None:
        if self.pending:
            self.query_one("#multi" if self.multiline else "#line").focus()

    def action_leave_input(self) -> None:
        self.query_one("#messages").focus()

    def action_toggle_input_mode(self) -> None:
        line, area = self.query_one("#line", HistoryInput), self.query_one("#multi", TextArea)
        self.multiline = not self.multiline
        if self.multiline:
            area.text = line.value
        else:
            line.value = area.text.replace("\n", " ")
        self.query_one("#prompt").set_class(self.multiline, "multiline")
        hint = "Ctrl+S sends · Ctrl+T single line" if self.multiline else "Enter sends · Ctrl+T multi-line"
        self.notify(f"{'Multi-line' if self.multiline else 'Single-line'} input: {hint}", timeout=3)
        self.action_focus_input()

    # --- keys ---

    def action_set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        agent = self.bridge.agent
        if agent is not None and agent.user is None and mode != "yolo":
            agent.user = self.bridge  # the person asked to be asked
        if self.pending in _MODE_ANSWERABLE:
            self.answer(MODE_KEYS[mode])  # the agent switches and acts on it (e.g. runs the command for y)
        elif agent is not None:
            agent.set_mode(mode)
        else:
            self.agent_config.mode = mode
        self.notify(f"Mode: {mode}", timeout=2)
        self.update_status()

    def action_interrupt(self) -> None:
        if self.finished.is_set():
            return
        if self.pending:
            self.answer(_INTERRUPT)
        elif self.bridge.agent is not None:
            self.bridge.agent.request_interrupt()
            self.notify("Interrupting: the agent stops for you after what it is doing now.", timeout=4)

    async def action_quit(self) -> None:
        self.bridge.stop()
        self.exit(self.result)
