"""Secret scrubbing for everything Wren writes or prints.

A secret is the value of a host variable whose name looks like a credential, a value registered by
the code that configured it (a model's api key), a password inside a URL (`scheme://user:PASS@`), or
a string with the shape of a well-known provider token. A `local` command can read Wren's own
environment (`cat /proc/$PPID/environ`), so hiding variables from commands is not enough: the text
is scrubbed on its way to disk and to the console.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"

SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|COOKIE|PRIVATE|DSN|DATABASE_URL|(^|_)PAT($|_))",
    re.IGNORECASE,
)
"""Names of variables whose values are secrets (matched anywhere in the name)."""

# Short values would redact ordinary words ("1", "true", "main"); real credentials are long.
MIN_SECRET_LENGTH = 8

# Shapes of tokens that are secrets wherever they appear, whoever set them.
_TOKEN_SHAPES = (
    r"sk-[A-Za-z0-9_\-]{20,}",  # OpenAI, Anthropic, DeepSeek, ...
    r"gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub
    r"github_pat_[A-Za-z0-9_]{30,}",
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
)
# The password part of `scheme://user:password@host`.
_URL_PASSWORD = r"(://[^\s:/@]+:)([^\s/@]+)(@)"

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Scrub these values from everything this process writes or prints from now on."""
    with _lock:
        _registered.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def env_secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of the variables in `environ` (default: this process's) whose names look secret."""
    environ = os.environ if environ is None else environ
    return {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}


def is_secret_name(name: str) -> bool:
    """Whether a variable called `name` holds a credential."""
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces secrets in text, and in every string of a JSON-like structure.

    `shapes` also replaces provider-token shapes and URL passwords, which a known value does not
    cover; text whose exact bytes matter (a patch to apply) is scrubbed of known values only.
    """

    def __init__(self, secrets: Iterable[str] = (), *, shapes: bool = True):
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self.secrets = values
        # Longest first, so that a secret containing another is replaced whole.
        literal = "|".join(re.escape(v) for v in values)
        alternatives = [literal] if literal else []
        if shapes:
            alternatives += _TOKEN_SHAPES
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None
        self._url = re.compile(_URL_PASSWORD) if shapes else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if self._url is not None and "://" in text:
            text = self._url.sub(rf"\1{REDACTED}\3", text)
        return text

    def data(self, value: Any) -> Any:
        """A copy of `value` with every string (keys included) scrubbed."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self.data(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


@functools.lru_cache(maxsize=8)
def _redactor_for(values: frozenset[str], shapes: bool) -> Redactor:
    return Redactor(values, shapes=shapes)


def current_redactor(extra: Iterable[str] = (), *, shapes: bool = True) -> Redactor:
    """A Redactor for the secrets known now: registered values, `extra`, the environment's secrets."""
    with _lock:
        values = frozenset(_registered | env_secret_values() | set(extra))
    return _redactor_for(values, shapes)


def redact(text: str) -> str:
    """`text` with every secret known now replaced by ***."""
    return current_redactor()(text)
