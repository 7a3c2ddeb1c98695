"""A small Python project with pytest tests, made fresh for each test session in a temp directory.

`mathlib/core.py` has a place for every mutator; `tests/` catches most breakages. Some parts are
there on purpose: `scale` (a mutation no test can see), `countdown` (a removal that loops forever),
`normalize` with `test_sometimes` (a test that fails only every other run once normalize is broken;
it counts its runs in $SYNTH_FIXTURE_SOMETIMES), and `test_flaky` (flaky even on clean code; it
counts its runs in $SYNTH_FIXTURE_FLAKY). Without those variables both always pass.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CORE = '''\
"""Small functions, each a place for a mutator."""


def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def total(items):
    result = 0
    for item in items:
        result += item
    return result


def window(items, start, size):
    return items[start:start + size]


def evens(n):
    return [i for i in range(n) if i % 2 == 0]


def both_positive(a, b):
    return a > 0 and b > 0


def ratio(a, b):
    return a / b


def power(base, exp):
    return base ** exp


def describe(n):
    if n % 2 == 0:
        kind = "even"
    else:
        kind = "odd"
    return f"{n} is {kind}"


def split_minutes(minutes):
    hours, rest = divmod(minutes, 60)
    return hours, rest


def shout(text):
    return text.strip().upper()


def first_word(text, default=None):
    words = text.split()
    if not words:
        return default
    return words[0]


def is_enabled(flags):
    enabled = False
    for flag in flags:
        enabled = True
    return enabled


def scale(x):
    return x * 1


def countdown(n):
    steps = []
    while n > 0:
        steps.append(n)
        n -= 1
    return steps


class Counter:
    def __init__(self):
        self.count = 0
        self.history = []

    def add(self, n=1):
        self.history.append(n)
        self.count += n
        return self.count
'''

TEXT = '''\
"""A function only `test_sometimes` reaches."""


def normalize(text):
    return text.strip().lower()
'''

TEST_CORE = """\
import pytest

from mathlib.core import (
    Counter,
    both_positive,
    clamp,
    countdown,
    describe,
    evens,
    first_word,
    is_enabled,
    power,
    ratio,
    scale,
    shout,
    split_minutes,
    total,
    window,
)


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_total():
    assert total([1, 2, 3]) == 6


def test_window():
    assert window([1, 2, 3, 4, 5], 1, 2) == [2, 3]


def test_evens():
    assert evens(6) == [0, 2, 4]


@pytest.mark.parametrize("a,b,expected", [(1, 1, True), (1, -1, False), (-1, 1, False)])
def test_both_positive(a, b, expected):
    assert both_positive(a, b) is expected


def test_ratio():
    assert ratio(6, 3) == 2


def test_power():
    assert power(2, 3) == 8


def test_describe():
    assert describe(4) == "4 is even"
    assert describe(3) == "3 is odd"


def test_split_minutes():
    assert split_minutes(125) == (2, 5)


def test_shout():
    assert shout("  hi ") == "HI"


def test_first_word():
    assert first_word("hello world") == "hello"
    assert first_word("   ", default="none") == "none"


def test_is_enabled():
    assert is_enabled(["x"]) is True
    assert is_enabled([]) is False


def test_scale():
    assert scale(3) == 3


def test_countdown():
    assert countdown(3) == [3, 2, 1]


def test_counter():
    c = Counter()
    c.add(2)
    assert c.add() == 3
    assert c.history == [2, 1]
"""

TEST_FLAKY = '''\
import fcntl
import os

from mathlib.core import total
from mathlib.text import normalize


def _bump(name):
    """How many times this was called before, across processes (0 when its state dir is not set)."""
    state = os.environ.get(f"SYNTH_FIXTURE_{name.upper()}")
    if not state:
        return 0
    with open(os.path.join(state, name), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = len(f.read())
        f.write("x")
        return n


def test_flaky():
    assert total([1, 1]) == 2
    assert _bump("flaky") % 2 == 0


def test_sometimes():
    n = _bump("sometimes")
    if normalize("  A ") != "a":
        assert n % 2 == 0, "normalize is broken (seen on odd runs only)"
'''


def make_project(root: Path) -> Path:
    """Write the fixture project into `root` (a git repository with one commit)."""
    (root / "mathlib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "mathlib" / "__init__.py").write_text('"""The fixture package."""\n')
    (root / "mathlib" / "core.py").write_text(CORE)
    (root / "mathlib" / "text.py").write_text(TEXT)
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "test_core.py").write_text(TEST_CORE)
    (root / "tests" / "test_flaky.py").write_text(TEST_FLAKY)
    (root / ".gitignore").write_text("__pycache__/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-qm", "fixture"], check=True)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "mathlib-project")


@pytest.fixture
def counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Turn on the run counters of test_flaky and/or test_sometimes."""

    def enable(*names: str) -> None:
        for name in names:
            state = tmp_path / f"state-{name}"
            state.mkdir(exist_ok=True)
            monkeypatch.setenv(f"SYNTH_FIXTURE_{name.upper()}", str(state))

    return enable


@pytest.fixture(scope="session")
def synth_run(tmp_path_factory: pytest.TempPathFactory):
    """One full `wren synth` pass over a fresh fixture project, shared by the tests that only read it."""
    from wren.synth.pipeline import SynthConfig, synthesize

    base = tmp_path_factory.mktemp("synth-run")
    project = make_project(base / "mathlib-project")
    state = base / "state"
    state.mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNTH_FIXTURE_FLAKY", str(state))
    mp.delenv("SYNTH_FIXTURE_SOMETIMES", raising=False)
    try:
        config = SynthConfig(
            repo_dir=str(project),
            output=str(base / "out" / "tasks.jsonl"),
            workers=2,
            progress=False,
            python=sys.executable,
        )
        report = synthesize(config)
    finally:
        mp.undo()
    return {"project": project, "base": base, "config": config, "report": report}
