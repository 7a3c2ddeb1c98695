"""Every mutator: it finds its places, its edits compile, and it is deterministic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wren.exceptions import ConfigError
from wren.synth.discover import file_candidates, parse_file, repo_candidates
from wren.synth.mutators import MUTATORS, Mutator, get_mutator, get_mutators

# For each mutator: code where it applies, and a line one of its mutations must produce.
CASES = {
    "flip_comparison": ("def f(a, b):\n    return a < b\n", "    return a >= b\n"),
    "swap_operands": ("def f(a, b):\n    return a - b\n", "    return b - a\n"),
    "off_by_one": ("def f(xs, n):\n    return [xs[i] for i in range(n)]\n", "range(n - 1)"),
    "flip_boolean_operator": ("def f(a, b):\n    return a and b\n", "    return a or b\n"),
    "change_operator": ("def f(a, b):\n    return a + b\n", "    return a - b\n"),
    "change_constant": ("def f(x):\n    return x + 1\n", "    return x + 0\n"),
    "drop_return_value": ("def f(x):\n    y = x * 2\n    return y\n", "    return\n"),
    "swap_call_arguments": ("def f(a, b):\n    return divmod(a, b)\n", "divmod(b, a)"),
    "break_method_chain": ("def f(s):\n    return s.strip().lower()\n", "    return s.lower()\n"),
    "invert_if_else": (
        "def f(x):\n    if x:\n        y = 1\n    else:\n        y = 2\n    return y\n",
        "    if x:\n        y = 2\n    else:\n        y = 1\n",
    ),
    "remove_conditional": (
        "def f(x):\n    if x < 0:\n        x = 0\n    return x\n",
        "def f(x):\n    return x\n",
    ),
    "remove_loop": (
        "def f(xs):\n    n = 0\n    for x in xs:\n        n += x\n    return n\n",
        "def f(xs):\n    n = 0\n    return n\n",
    ),
    "remove_assignment": (
        "def f(x):\n    x = abs(x)\n    return x\n",
        "def f(x):\n    return x\n",
    ),
    "remove_call": (
        "def f(xs):\n    xs.append(1)\n    return xs\n",
        "def f(xs):\n    return xs\n",
    ),
}


def _write(tmp_path: Path, code: str) -> Path:
    (tmp_path / "mod.py").write_text(code)
    return tmp_path


def test_every_builtin_mutator_has_a_case():
    assert set(CASES) == set(MUTATORS)
    assert len(MUTATORS) >= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_mutator_applies_compiles_and_is_deterministic(tmp_path: Path, name: str):
    code, expected = CASES[name]
    root = _write(tmp_path, code)
    mutator = get_mutator(name)

    first = file_candidates(parse_file(root, "mod.py"), [mutator])
    assert first, f"{name} found nothing to change in {code!r}"
    texts = [c.mutated_text() for c in first]
    for text in texts:
        assert text != code
        compile(text, "mod.py", "exec")
    assert any(expected in text for text in texts), texts

    again = file_candidates(parse_file(root, "mod.py"), [get_mutator(name)])
    assert [c.id for c in again] == [c.id for c in first]
    assert [c.mutated_text() for c in again] == texts
    assert all(c.mutator == name and c.function == "f" for c in first)


def test_mutators_leave_code_outside_function_bodies_alone(tmp_path: Path):
    code = "X = 1 + 2\n\n\ndef f(a=3 < 4):\n    return a\n\n\nclass C:\n    Y = True\n"
    root = _write(tmp_path, code)
    candidates = file_candidates(parse_file(root, "mod.py"), get_mutators())
    # Only `return a` in f's body is fair game.
    assert {c.mutator for c in candidates} == {"drop_return_value"}


def test_remove_assignment_keeps_first_bindings(tmp_path: Path):
    code = "def f(x):\n    y = x + 1\n    y = y * 2\n    return y\n"
    root = _write(tmp_path, code)
    removals = file_candidates(parse_file(root, "mod.py"), [get_mutator("remove_assignment")])
    # Removing `y = x + 1` would only give an UnboundLocalError; `y = y * 2` is a real update.
    assert [(c.start_line, c.end_line) for c in removals] == [(3, 3)]


def test_removals_never_empty_a_block(tmp_path: Path):
    code = "def f(xs):\n    for x in xs:\n        print(x)\n"
    root = _write(tmp_path, code)
    assert (
        file_candidates(parse_file(root, "mod.py"), [get_mutator("remove_loop"), get_mutator("remove_call")])
        == []
    )


def test_spliced_edits_equal_full_regeneration(project: Path):
    # The fast path regenerates only the edited node; libcst's whole-module rewrite is the reference.
    candidates = repo_candidates(project, get_mutators())
    assert len({c.mutator for c in candidates}) == len(MUTATORS)
    for c in candidates:
        module = c.file.module
        if c.edit.replacement is None:
            reference = module.deep_remove(c.edit.target).code
        else:
            reference = module.deep_replace(c.edit.target, c.edit.replacement).code
        fast = c.mutated_text()
        assert fast == reference or ast.dump(ast.parse(fast)) == ast.dump(ast.parse(reference)), c


def test_crlf_files_keep_their_line_endings(tmp_path: Path):
    (tmp_path / "mod.py").write_bytes(b"def f(a, b):\r\n    x = 1\r\n    return a < b\r\n")
    (candidate,) = file_candidates(parse_file(tmp_path, "mod.py"), [get_mutator("flip_comparison")])
    assert candidate.mutated_text() == "def f(a, b):\r\n    x = 1\r\n    return a >= b\r\n"


class Negate(Mutator):
    name = "negate_return"
    summary = "return not x"

    def edits(self, node, parent, ctx):
        return ()


def test_mutator_registry_by_name_and_dotted_path():
    assert get_mutator("flip_comparison").name == "flip_comparison"
    assert get_mutator(f"{__name__}.Negate").name == "negate_return"
    with pytest.raises(ConfigError, match="unknown mutator 'flip'"):
        get_mutator("flip")
    with pytest.raises(ConfigError, match="cannot load mutator"):
        get_mutator("no.such.Module")
    with pytest.raises(ConfigError, match="not a wren.synth.mutators.Mutator"):
        get_mutator("pathlib.Path")
