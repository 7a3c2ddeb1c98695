"""Problem statements written from what the failing tests show, never from the patch.

The template writer uses the failing tests' names, their exception messages, and the traceback
frames that lie in the package (not in the tests). A model can rewrite those facts as an issue a
user would file; it sees the same facts and nothing of the code change. Either way, a statement
that quotes a line the patch changes is not used. These are the L1 statements of the hint ladder
(`wren.synth.ladder`); `issue_statement` writes the L0 one from the same facts, naming no test, file
or line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from typing import Any

from jinja2 import Environment, StrictUndefined

from wren.agents.repeats import ADDRESS
from wren.synth.discover import is_test_file
from wren.synth.validate import Verdict

MAX_SHOWN = 3
MAX_LISTED = 8
MAX_MESSAGE_LINES = 12
MAX_MESSAGE_CHARS = 1200

_env = Environment(
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
)

TEMPLATE = _env.from_string(
    """\
{{ title }}

{{ opening }}

{% for f in shown %}
`{{ f.test }}` fails{% if f.type %} with `{{ f.type }}`{% endif %}:

```
{{ f.message }}
```

{% if f.frames %}
The error is raised in {% for fr in f.frames %}`{{ fr.function }}` ({{ fr.path }}){% if not loop.last %}, called from {% endif %}{% endfor %}.

{% endif %}
{% endfor %}
{% if others %}
{{ others_intro }} {{ others | join(", ") }}{% if hidden %} and {{ hidden }} more{% endif %}.

{% endif %}
{{ closing }}
"""
)

MODEL_PROMPT = _env.from_string(
    """\
You are a developer who uses the Python project `{{ repo }}`. Some of its behaviour is broken. \
Write a GitHub issue about it, from the facts below only.

Facts (from running the project's tests):
{{ facts }}

Rules: describe what goes wrong and what you expected; you may quote the error messages and name the \
functions involved. Do not guess at the cause, do not suggest a fix, and do not write any code of the \
implementation. Start with a one-line title. Output only the issue text."""
)

_TITLES_RAISE = [
    "`{function}` raises {type}",
    "{type} from `{function}`",
    "Unexpected {type} in `{function}`",
]
_TITLES_WRONG = [
    "Wrong result in `{test}`",
    "`{test}` no longer passes",
    "Regression: `{test}` fails",
]
_OPENINGS = [
    "Some behaviour of `{repo}` is broken: tests that describe it fail.",
    "I ran the test suite of `{repo}` and part of it fails.",
    "After the latest changes, `{repo}` no longer behaves as its tests expect.",
]
_CLOSINGS = [
    "These tests used to pass; the expected behaviour is what they assert.",
    "Expected: the behaviour the tests check, as before.",
    "Everything else in the test suite still passes.",
]
_OTHERS = ["Also failing:", "Other failing tests:", "The same problem shows in"]


def _pick(options: list[str], key: str, salt: str) -> str:
    digest = hashlib.sha1(f"{salt}:{key}".encode()).digest()
    return options[digest[0] % len(options)]


def changed_lines(patch: str) -> list[str]:
    """The code lines a patch adds or removes (stripped, without diff headers)."""
    out = []
    for line in patch.splitlines():
        if line.startswith(("+++", "---")) or not line.startswith(("+", "-")):
            continue
        code = line[1:].strip()
        if code:
            out.append(code)
    return out


def reveals(text: str, patch: str, min_length: int = 8) -> bool:
    """Whether `text` quotes a line that the patch changes."""
    return any(len(code) >= min_length and code in text for code in changed_lines(patch))


def _trim(message: str) -> str:
    # Object addresses change from run to run; the statement should not.
    lines = ADDRESS.sub("0x...", message).strip().splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        lines = [*lines[:MAX_MESSAGE_LINES], "..."]
    text = "\n".join(lines)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + " ..."


def _collect_error_message(message: str) -> str:
    # A formatted collection report quotes source lines; only its `E   ` lines are the error itself.
    errors = [line[1:].strip() for line in message.splitlines() if line.startswith("E ")]
    return "\n".join(errors[-MAX_MESSAGE_LINES:]) if errors else message


def _frames(failure: dict[str, Any], sources: Collection[str]) -> list[dict[str, str]]:
    """Frames inside the package, innermost first, each function once."""
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for frame in reversed(failure.get("frames", [])):
        path = frame.get("path", "")
        if path.startswith("..") or is_test_file(path) or (sources and path not in sources):
            continue
        key = (path, frame.get("function", ""))
        if key not in seen:
            seen.add(key)
            out.append({"path": path, "function": frame.get("function", "?")})
    return out[:4]


def facts(verdict: Verdict, sources: Collection[str]) -> list[dict[str, Any]]:
    """What each failing test showed: its id, exception type and message, and package frames."""
    shown = []
    collect = [_collect_error_message(e.get("message", "")) for e in verdict.collect_errors]
    for test in verdict.fail_to_pass:
        failure = verdict.failures.get(test)
        if failure is not None:
            shown.append(
                {
                    "test": test,
                    "type": failure.get("type", ""),
                    "message": _trim(failure.get("message", "")),
                    "frames": _frames(failure, sources),
                }
            )
        elif collect:
            shown.append({"test": test, "type": "", "message": _trim(collect[0]), "frames": []})
    return shown


def template_statement(verdict: Verdict, repo: str, sources: Collection[str]) -> str:
    """The default statement; its wording varies with the candidate, its facts never do."""
    key = verdict.candidate.id
    shown = facts(verdict, sources)[:MAX_SHOWN]
    raising = next((f for f in shown if f["frames"] and f["type"] != "AssertionError"), None)
    if raising is not None:
        title = _pick(_TITLES_RAISE, key, "title").format(
            function=raising["frames"][0]["function"], type=raising["type"]
        )
    else:
        test = verdict.fail_to_pass[0].split("::")[-1]
        title = _pick(_TITLES_WRONG, key, "title").format(test=test)
    others = [t for t in verdict.fail_to_pass if t not in {f["test"] for f in shown}]
    return (
        TEMPLATE.render(
            title=title,
            opening=_pick(_OPENINGS, key, "opening").format(repo=repo),
            shown=shown,
            others_intro=_pick(_OTHERS, key, "others"),
            others=[f"`{t}`" for t in others[:MAX_LISTED]],
            hidden=max(0, len(others) - MAX_LISTED),
            closing=_pick(_CLOSINGS, key, "closing"),
        ).strip()
        + "\n"
    )


ISSUE_TEMPLATE = _env.from_string(
    """\
{{ title }}

{{ opening }}

{% for f in shown %}
{{ "What I see:" if loop.first else "And elsewhere:" }}

```
{{ f.message }}
```

{% if f.observed %}
I get `{{ f.observed }}` where `{{ f.expected }}` is expected.

{% endif %}
{% if f.functions %}
The error is raised in {% for name in f.functions %}`{{ name }}`{% if not loop.last %}, called from {% endif %}{% endfor %}.

{% endif %}
{% endfor %}
{% if others %}
{{ others }} other {{ "check fails" if others == 1 else "checks fail" }} as well.

{% endif %}
{{ closing }}
"""
)
_ISSUE_TITLES_WRONG = [
    "Wrong result: `{observed}` instead of `{expected}`",
    "`{expected}` expected, got `{observed}`",
]
_ISSUE_OPENINGS = [
    "Something in `{repo}` does not behave as it should.",
    "I use `{repo}` and ran into wrong behaviour.",
    "After updating `{repo}`, this no longer works for me.",
]
_ISSUE_CLOSINGS = [
    "I expected the behaviour it had before.",
    "It used to work; I expected it still to.",
    "Expected: the documented behaviour.",
]
_ASSERT_EQUAL = re.compile(r"^(?:AssertionError: )?assert (.+?) (?:==|is) (.+)$")
_PYTEST_TIP = re.compile(r"^\s*Use -v to get (more|the full) diff")
_PATH_OR_LINE = re.compile(r"\.py\b|\bline \d+|:\d+:")
MAX_TITLE_VALUE = 40


def names_of_tests(test_ids: Collection[str]) -> set[str]:
    """What names a test: its id, its file, and its class and function names (without parameters)."""
    names: set[str] = set()
    for test_id in test_ids:
        names.add(test_id)
        for part in test_id.split("::"):
            names.add(part.split("[", 1)[0])
    return {n for n in names if len(n) >= 4}


def names_a_test(text: str, names: Collection[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) for name in names)


def _issue_message(message: str, banned: Collection[str]) -> str:
    """A failure message without the lines that name a test, a file or a line number."""
    kept = [
        line
        for line in message.splitlines()
        if not _PATH_OR_LINE.search(line) and not names_a_test(line, banned) and not _PYTEST_TIP.search(line)
    ]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept).strip("\n")


def issue_statement(verdict: Verdict, repo: str, sources: Collection[str]) -> str:
    """The L0 statement: the misbehaviour as a user would report it, with no test, file or line named."""
    key = verdict.candidate.id
    banned = names_of_tests([*verdict.fail_to_pass, *verdict.failures])
    shown: list[dict[str, Any]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for fact in facts(verdict, sources):
        if len(shown) == MAX_SHOWN:
            break
        message = _issue_message(fact["message"], banned)
        if not message:
            message = fact["type"] or "(no message)"
        match = _ASSERT_EQUAL.match(message.splitlines()[0])
        if match and not match.group(2).startswith("not "):
            observed, expected = match.group(1), match.group(2)
        else:
            observed, expected = "", ""
        functions = [fr["function"] for fr in fact["frames"] if not names_a_test(fr["function"], banned)]
        if (message, tuple(functions)) in seen:  # the same symptom twice says nothing new
            continue
        seen.add((message, tuple(functions)))
        shown.append(
            {"message": message, "type": fact["type"], "observed": observed, "expected": expected,
             "functions": functions}
        )  # fmt: skip
    raising = next((f for f in shown if f["functions"] and f["type"] != "AssertionError"), None)
    wrong = next((f for f in shown if f["observed"]), None)
    if raising is not None:
        title = _pick(_TITLES_RAISE, key, "title").format(
            function=raising["functions"][0], type=raising["type"]
        )
    elif wrong is not None and max(len(wrong["observed"]), len(wrong["expected"])) <= MAX_TITLE_VALUE:
        title = _pick(_ISSUE_TITLES_WRONG, key, "title").format(**wrong)
    else:
        title = f"Wrong behaviour in `{repo}`"
    text = (
        ISSUE_TEMPLATE.render(
            title=title,
            opening=_pick(_ISSUE_OPENINGS, key, "opening").format(repo=repo),
            shown=shown,
            others=max(0, len(verdict.fail_to_pass) - len(shown)),
            closing=_pick(_ISSUE_CLOSINGS, key, "closing"),
        ).strip()
        + "\n"
    )
    return text if not names_a_test(text, banned) else minimal_issue(verdict, repo)


def minimal_issue(verdict: Verdict, repo: str) -> str:
    """An issue that says only that something is broken: when a fuller one would quote the patch."""
    kinds = sorted({f.get("type", "") for f in verdict.failures.values()} - {""})
    seen = f" (I see {', '.join(f'`{k}`' for k in kinds)})" if kinds else ""
    return f"Wrong behaviour in `{repo}`\n\nSomething in `{repo}` no longer works as it should{seen}.\n"


def minimal_statement(verdict: Verdict) -> str:
    """Test names only: the fallback when a fuller statement would quote the patch."""
    tests = ", ".join(f"`{t}`" for t in verdict.fail_to_pass[:MAX_LISTED])
    more = len(verdict.fail_to_pass) - MAX_LISTED
    return f"These tests fail and should pass: {tests}{f' and {more} more' if more > 0 else ''}.\n"


def _strip_fences(text: str) -> str:
    text = text.strip()
    match = re.fullmatch(r"```(?:markdown|md)?\n(.*)\n```", text, flags=re.DOTALL)
    return match.group(1).strip() if match else text


class StatementWriter:
    """Writes each validated task's statement: from the template, or by a model when one is given."""

    def __init__(self, repo: str, sources: Collection[str], model: Any = None):
        self.repo = repo
        self.sources = set(sources)
        self.model = model

    def issue(self, verdict: Verdict, patch: str) -> str:
        """The L0 statement (always from the template, so that it never names a test)."""
        text = issue_statement(verdict, self.repo, self.sources)
        return minimal_issue(verdict, self.repo) if reveals(text, patch) else text

    def write(self, verdict: Verdict, patch: str) -> tuple[str, str]:
        """(statement, source) where source is `template`, `model` or `minimal`."""
        text = template_statement(verdict, self.repo, self.sources)
        if reveals(text, patch):
            return minimal_statement(verdict), "minimal"
        if self.model is None:
            return text, "template"
        prompt = MODEL_PROMPT.render(repo=self.repo, facts=text)
        try:
            reply = self.model.query([{"role": "user", "content": prompt}])
        except Exception:  # a model that fails on one task should not stop the run
            return text, "template"
        written = _strip_fences(str(reply.get("content") or ""))
        if not written or reveals(written, patch):
            return text, "template"
        return written + "\n", "model"
