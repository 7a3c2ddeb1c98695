"""The interactive agent: the default loop with a person in it.

Modes: `confirm` shows each proposed command and waits (Enter runs it, typed text rejects it and goes to
the model as the reason), `yolo` runs commands without asking, `human` runs the commands the user types.
`/c`, `/y` and `/u` switch modes at any prompt. Ctrl-C lets the user add a message or stop; a limit that
is hit can be raised; after a submission the user can give a new task.

The agent talks to the person through a `user` object (`ask(prompt, kind=...)` and `tell(text)`), so the
same logic drives the terminal REPL and the Textual TUI. Without a user it never asks anything.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal, Protocol

from wren.agents.config import AgentConfig
from wren.agents.default import AgentResult, DefaultAgent
from wren.exceptions import (
    ConfigError,
    LimitsExceeded,
    NonTerminatingException,
    Submitted,
    TerminatingException,
)
from wren.models.actions import parse_action

Mode = Literal["confirm", "yolo", "human"]
MODE_COMMANDS: dict[str, Mode] = {"/c": "confirm", "/y": "yolo", "/u": "human"}
STOP_COMMANDS = ("/q", "/stop")
HELP = (
    "/c confirm mode: ask before each command the model proposes\n"
    "/y yolo mode: run the model's commands without asking\n"
    "/u human mode: you type the commands\n"
    "/q stop the run\n"
    "/h this help"
)


class InteractiveAgentConfig(AgentConfig):
    """The agent's templates and limits, and how it involves the user."""

    mode: Mode = "confirm"
    """confirm: ask before each proposed command; yolo: never ask; human: the user types the commands."""
    whitelist_actions: list[str] = []
    """Regular expressions; a proposed command that matches one (re.match) runs without confirmation."""
    confirm_exit: bool = True
    """After a submission, ask whether to finish or to go on with a new task."""


class UserInterruption(NonTerminatingException):
    """The user stepped in; the message goes to the model as the observation."""


class UserRejection(UserInterruption):
    """The user rejected the proposed command; the message holds their reason."""


class UserNewTask(UserInterruption):
    """After a submission the user gave a new task."""


class UserStopped(TerminatingException):
    """The user stopped the run."""

    exit_status = "Interrupted"


class User(Protocol):
    """A person at a terminal or in the TUI. `ask` may raise KeyboardInterrupt or EOFError."""

    def ask(self, prompt: str, *, kind: str) -> str:
        """Show `prompt` and return the answer; `kind` is confirm, human, interrupt, new_task or limit."""
        ...

    def tell(self, text: str) -> None:
        """Show an informational line."""
        ...


class InteractiveAgent(DefaultAgent):
    """DefaultAgent with confirm / yolo / human modes and a user who can step in."""

    config: InteractiveAgentConfig
    config_class = InteractiveAgentConfig

    def __init__(self, model: Any, env: Any, *, user: User | None = None, **kwargs: Any):
        """`kwargs`: DefaultAgent's (hooks, config, config fields)."""
        super().__init__(model, env, **kwargs)
        if user is None and self.config.mode == "human":
            raise ConfigError("agent.mode 'human' needs a user at a terminal")
        self.user = user
        self._whitelist = [re.compile(p) for p in self.config.whitelist_actions]
        # Set from another thread (the TUI) to interrupt the run at its next safe point.
        self.interrupt_requested = threading.Event()

    # --- what the user sees and says ---

    def add_messages(self, *messages: dict) -> None:
        super().add_messages(*messages)
        for message in messages:
            self.emit("on_message", message)

    def set_mode(self, mode: Mode) -> None:
        self.config.mode = mode
        self.emit("on_mode", mode)

    def tell(self, text: str) -> None:
        if self.user is not None:
            self.user.tell(text)

    def prompt(self, text: str, *, kind: str) -> str:
        """Ask the user; /h shows help and asks again, /q stops, a mode command switches and is returned."""
        assert self.user is not None
        while True:
            answer = self.user.ask(text, kind=kind)
            command = answer.strip()
            if command in ("/h", "/help"):
                self.tell(f"Current mode: {self.config.mode}\n{HELP}")
                continue
            if command in STOP_COMMANDS:
                raise UserStopped("stopped by the user")
            if command in MODE_COMMANDS:
                mode = MODE_COMMANDS[command]
                if mode == self.config.mode:
                    self.tell(f"Already in {mode} mode.")
                else:
                    self.set_mode(mode)
                    self.tell(f"Switched to {mode} mode.")
            return answer

    # --- the loop ---

    def run(self, task: str, **kwargs: Any) -> AgentResult:
        try:
            return super().run(task, **kwargs)
        except KeyboardInterrupt:
            if self.finished is not None:  # the loop recorded the interruption and told the hooks
                return self.finished
            # Ctrl-C outside a step (while a hook prints or records): end the run, but keep its trajectory.
            reason = "interrupted (Ctrl-C)"
            extra = {"exit_status": "Interrupted", "submission": "", "reason": reason}
            if not self.messages or self.messages[-1].get("role") != "exit":
                exit_message = {"role": "exit", "content": reason, "extra": extra}
                self.messages.append(exit_message)
                self._emit_each("on_step", {"step": self.n_steps, "messages": [exit_message]})
            last = self.messages[-1].get("extra") or extra
            result = AgentResult(
                last["exit_status"], last.get("submission", ""), self.n_steps, self.cost, self.messages
            )
            self._emit_each("on_finish", result)
            return result

    def step(self) -> dict[str, Any]:
        try:
            self.check_interrupt()
            return self.human_step() if self.config.mode == "human" else self.model_step()
        except KeyboardInterrupt:
            self.on_interrupt()
        except EOFError:  # Ctrl-D at a prompt
            raise UserStopped("stopped by the user (end of input)") from None
        except Submitted as submitted:
            self.on_submitted(submitted)
        raise AssertionError("unreachable: the handlers above always raise")

    def query(self) -> dict:
        self.check_limits()  # before the model call is shown as under way: raising a limit asks the user
        self.emit("on_model_call", "start")
        try:
            return super().query()
        finally:
            self.emit("on_model_call", "end")

    def model_step(self) -> dict[str, Any]:
        message = self.query()
        action = parse_action(message, self.config.action_format, self.config.action_regex)
        message, command = self.unrepeated(message, action.command)
        self.check_interrupt()
        self.confirm(command)
        return self.execute_action(message, command)

    def human_step(self) -> dict[str, Any]:
        while True:
            command = self.prompt("Type a command to run (/c confirm, /y yolo, /h help)", kind="human")
            if self.config.mode != "human":
                return self.model_step()
            if command.strip() and command.strip() not in MODE_COMMANDS:
                break
        self.add_messages(
            {
                "role": "user",
                "content": f"User command:\n```bash\n{command}\n```",
                "extra": {"source": "human"},
            }
        )
        return self.execute_action({"extra": {"source": "human"}}, command)

    # --- where the user steps in ---

    def needs_confirmation(self, command: str) -> bool:
        if self.user is None or self.config.mode != "confirm":
            return False
        return not any(p.match(command) for p in self._whitelist)

    def confirm(self, command: str) -> None:
        """Return when `command` may run; raise UserRejection (with the user's reason) when it may not."""
        while self.needs_confirmation(command):
            answer = self.prompt(
                "Run this command? Enter runs it; type a reason to reject it (/y yolo, /u human, /h help)",
                kind="confirm",
            ).strip()
            if answer == "/u":
                raise UserRejection(
                    "The command was not run: the user switched to human mode and will type commands."
                )
            if answer in MODE_COMMANDS:
                continue  # /y switched to yolo (the loop ends), /c was already the mode (ask again)
            if answer:
                raise UserRejection(
                    f"The command was not run. The user rejected it with this message: {answer}"
                )
            return

    def request_interrupt(self) -> None:
        """Ask the run to stop for the user at its next safe point (thread-safe)."""
        self.interrupt_requested.set()

    def check_interrupt(self) -> None:
        if self.interrupt_requested.is_set():
            self.interrupt_requested.clear()
            raise KeyboardInterrupt

    def on_interrupt(self) -> None:
        """Ctrl-C: the user adds a message for the model, goes on, or stops."""
        if self.user is None:
            raise UserStopped("interrupted (Ctrl-C)")
        try:
            answer = self.prompt(
                "Interrupted. Type a message for the model, Enter to go on, /q (or Ctrl-C again) to stop",
                kind="interrupt",
            ).strip()
        except (KeyboardInterrupt, EOFError):
            raise UserStopped("stopped by the user (Ctrl-C)") from None
        if answer and answer not in MODE_COMMANDS:
            raise UserInterruption(f"The user interrupted with this message: {answer}")
        raise UserInterruption("The user interrupted the run briefly. Go on with the task.")

    def on_submitted(self, submitted: Submitted) -> None:
        """After a submission, the user may give a new task instead of finishing."""
        if self.user is None or not self.config.confirm_exit:
            raise submitted
        while True:
            try:
                answer = self.prompt(
                    "The agent submitted. Type a new task to go on, or press Enter to finish", kind="new_task"
                ).strip()
            except (KeyboardInterrupt, EOFError, UserStopped):
                raise submitted from None
            if answer == "/u":
                raise UserInterruption("The user switched to human mode and will type commands.")
            if answer in MODE_COMMANDS:
                continue
            if answer:
                raise UserNewTask(f"The user gave a new task: {answer}")
            raise submitted

    def check_limits(self) -> None:
        while True:
            try:
                return super().check_limits()
            except LimitsExceeded as e:
                if not self.offer_new_limit(e):
                    raise

    def render_error(self, error: NonTerminatingException) -> str:
        while True:
            try:
                return super().render_error(error)
            except LimitsExceeded as e:
                if not self.offer_new_limit(e):
                    raise
                self.format_errors -= 1  # it is counted again on the retry

    def offer_new_limit(self, exceeded: LimitsExceeded) -> bool:
        """Ask for a higher value of the limit that was hit; True when the user gave one."""
        field = exceeded.limit
        if self.user is None or field not in type(self.config).model_fields:
            return False
        current = getattr(self.config, field)
        kind = type(current)
        while True:
            try:
                answer = self.prompt(
                    f"Limit reached: {exceeded}. New {field} (now {current}; 0 = none), or Enter to stop",
                    kind="limit",
                ).strip()
            except (KeyboardInterrupt, EOFError, UserStopped):
                return False
            if not answer or answer in MODE_COMMANDS:
                return False
            try:
                value = kind(float(answer)) if kind is int else kind(answer)
            except ValueError:
                self.tell(f"{answer!r} is not a number.")
                continue
            if value < 0 or (0 < value <= current):
                self.tell(f"The new {field} must be larger than {current} (or 0 for no limit).")
                continue
            setattr(self.config, field, value)
            self.tell(f"{field} is now {value}.")
            return True
