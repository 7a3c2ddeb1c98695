"""Constrained output: ask the server for replies that are exactly one THOUGHT and one bash block.

Servers say it in different words: llama.cpp takes a GBNF `grammar`; vLLM and SGLang take a regex
(`structured_outputs` / `guided_regex` / `regex`). Tool-call replies are constrained by
`tool_choice: required`, which makes the server follow the tool's JSON schema. `auto` asks the
server once what it is and picks the form it supports.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import httpx

logger = logging.getLogger("wren.models")

ConstrainMode = Literal["auto", "off", "grammar", "regex"]
ConstrainForm = Literal["full", "fence"]

# One THOUGHT line, then one bash block whose lines never start with a fence (markdown's own rule),
# so backticks inside commands are fine. No bounded repetitions ({m,n}): llama.cpp expands them into
# nested rules that make every check slow.
_GBNF_BLOCK = [
    'block ::= "```bash\\n" line+ "```"',
    'line ::= ([^`\\n] [^\\n]* | "`" [^`\\n] [^\\n]* | "``" [^`\\n] [^\\n]*)? "\\n"',
]
GRAMMARS: dict[str, str] = {
    "full": "\n".join(['root ::= "THOUGHT: " [^\\n`]+ "\\n" block', *_GBNF_BLOCK]),
    # Only the fences are fixed: the model writes what it likes before the block.
    "fence": "\n".join(["root ::= [^`]* block", *_GBNF_BLOCK]),
}
_REGEX_BLOCK = r"```bash\n(?:(?:[^`\n][^\n]*|`[^`\n][^\n]*|``[^`\n][^\n]*)?\n)+```"
REGEXES: dict[str, str] = {
    "full": r"THOUGHT: [^\n`]+\n" + _REGEX_BLOCK,
    "fence": r"[^`]*" + _REGEX_BLOCK,
}


def detect(api_base: str, timeout: float = 5.0) -> Literal["off", "grammar", "regex"]:
    """What the server at `api_base` supports: llama.cpp -> grammar, vLLM/SGLang -> regex, else off."""
    root = api_base.rstrip("/").removesuffix("/v1")
    try:
        props = httpx.get(root + "/props", timeout=timeout)
        if props.status_code == 200 and "default_generation_settings" in props.json():
            return "grammar"
        if httpx.get(root + "/get_server_info", timeout=timeout).status_code == 200:  # SGLang
            return "regex"
        models = httpx.get(api_base.rstrip("/") + "/models", timeout=timeout)
        if models.status_code == 200:
            owners = {m.get("owned_by") for m in models.json().get("data") or []}
            if "vllm" in owners:
                return "regex"
    except (httpx.HTTPError, ValueError):
        pass
    return "off"


def constraint_fields(
    mode: Literal["off", "grammar", "regex"], form: ConstrainForm, *, tools: bool
) -> dict[str, Any]:
    """Request-body fields that constrain one reply."""
    if mode == "off":
        return {}
    if tools:
        return {"tool_choice": "required"}
    if mode == "grammar":
        return {"grammar": GRAMMARS[form]}
    regex = REGEXES[form]
    # vLLM >= 0.10 reads structured_outputs, older vLLM guided_regex, SGLang regex; each ignores the others.
    return {"structured_outputs": {"regex": regex}, "guided_regex": regex, "regex": regex}


class Constraint:
    """The constraint one model uses, resolved against its server on first use."""

    def __init__(self, mode: ConstrainMode, form: ConstrainForm, api_base: str | None):
        self.mode, self.form, self.api_base = mode, form, api_base
        self._resolved: Literal["off", "grammar", "regex"] | None = None if mode == "auto" else mode

    @property
    def resolved(self) -> Literal["off", "grammar", "regex"]:
        if self._resolved is None:
            self._resolved = detect(self.api_base) if self.api_base else "off"
            logger.info("constrained output for %s: %s", self.api_base, self._resolved)
        return self._resolved

    def fields(self, *, tools: bool) -> dict[str, Any]:
        if self.mode == "off":
            return {}
        return constraint_fields(self.resolved, self.form, tools=tools)
