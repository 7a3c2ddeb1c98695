"""Errors of model calls, split by whether another attempt can help."""

from __future__ import annotations

from wren.exceptions import ModelError


class RetryableModelError(ModelError):
    """Rate limits, server errors, dropped connections: worth another attempt."""


class PermanentModelError(ModelError):
    """Authentication, not found, bad request, context window: retrying cannot help."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = ""):
        super().__init__(message)
        self.status = status
        self.kind = kind


class ContextWindowExceeded(PermanentModelError):
    """The prompt no longer fits the model's context window."""


_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "context size",  # llama.cpp: "the request exceeds the available context size"
)


def classify_http_error(status: int, body: str) -> ModelError:
    """The error for an HTTP error response from an OpenAI-compatible server."""
    text = body[:2000]
    lowered = text.lower()
    if status == 400 and any(w in lowered for w in _CONTEXT_WORDS):
        return ContextWindowExceeded(
            f"context window exceeded (HTTP 400): {text}", status=status, kind="context_window"
        )
    if status in (401, 403):
        return PermanentModelError(
            f"authentication failed (HTTP {status}): {text}", status=status, kind="auth"
        )
    if status == 404:
        return PermanentModelError(f"not found (HTTP 404): {text}", status=status, kind="not_found")
    if status in (408, 409, 429) or status >= 500:
        return RetryableModelError(f"HTTP {status}: {text}")
    return PermanentModelError(f"HTTP {status}: {text}", status=status, kind="bad_request")
