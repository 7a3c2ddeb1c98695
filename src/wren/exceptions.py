"""Exceptions that drive the agent loop.

Recoverable ones (NonTerminatingException) are rendered back to the model as a message;
terminating ones end the run and carry its exit status.
"""

from __future__ import annotations


class WrenError(Exception):
    """Base of all Wren errors."""


class ConfigError(WrenError, ValueError):
    """A configuration is invalid; the message names the offending key."""


class NonTerminatingException(WrenError):
    """The agent tells the model and goes on."""


class FormatError(NonTerminatingException):
    """The model's output did not contain exactly one action."""

    def __init__(self, message: str, *, content: str = "", actions: list[str] | None = None):
        super().__init__(message)
        self.content = content
        self.actions = actions or []
        """The commands that were found (none, or more than one)."""


class ExecutionTimeoutError(NonTerminatingException):
    """A command ran past its timeout; `output` holds what it printed before it was killed."""

    def __init__(self, message: str, *, output: str = "", action: str = "", timeout: float = 0.0):
        super().__init__(message)
        self.output = output
        self.action = action
        self.timeout = timeout


class TerminatingException(WrenError):
    """The run ends; `exit_status` names why and `submission` is what it produced."""

    exit_status = "Error"

    def __init__(self, message: str = "", *, submission: str = ""):
        super().__init__(message)
        self.submission = submission


class Submitted(TerminatingException):
    """The agent printed the submit marker; the rest of that output is the submission."""

    exit_status = "Submitted"


class LimitsExceeded(TerminatingException):
    """A step, cost, net-cost, wall-time or format-error limit was hit."""

    exit_status = "LimitsExceeded"

    def __init__(self, message: str = "", *, limit: str = "", submission: str = ""):
        super().__init__(message, submission=submission)
        self.limit = limit


class ModelError(WrenError):
    """The model could not be queried (after retries, or an error that is never retried)."""


class ModelNotFound(ModelError):
    """An unknown model, provider or catalog name; the message lists the known names."""


class RunStopped(BaseException):
    """A signal from outside (SIGTERM, SIGHUP) stops the run; `exit_status` names it.

    A BaseException like KeyboardInterrupt, so that no `except Exception` on the way (a retry, a
    handler that logs and goes on) swallows it: the run's cleanup in `finally` blocks still runs.
    """

    exit_status = "Stopped"
    signum = 0


class Terminated(RunStopped):
    """SIGTERM: what `timeout`, `kill`, a job scheduler or systemd sends."""

    exit_status = "Terminated"
    signum = 15


class HungUp(RunStopped):
    """SIGHUP: the terminal the run was started from closed."""

    exit_status = "Hangup"
    signum = 1
