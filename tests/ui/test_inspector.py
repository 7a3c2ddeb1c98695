"""`wren inspect`: the run list, filters, stepping, search and the diff, driven by Textual's pilot;
and the command itself as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from tests.ui.screen import screen_text, wait_for
from wren.trajectory import TrajectoryError, find_runs, message_text, pages
from wren.ui.inspector import InspectorApp, RunListScreen, RunScreen
from wren.ui.runs import filter_runs, load_runs, parse_filter

SIZE = (120, 40)


def runs_at(root: Path):
    return load_runs(find_runs(root))


def by_name(runs, name):
    return next(r for r in runs if r.name == name)


def test_runs_are_found_and_summarised_for_wren_and_mini_swe_agent(saved_runs):
    runs = runs_at(saved_runs)
    assert sorted(r.name for r in runs) == [
        "broken.traj.json",
        "calc-crashed",
        "calc-fixed",
        "calc-looping",
        "mini-calc",
    ]
    fixed = by_name(runs, "calc-fixed")
    assert (fixed.exit_status, fixed.steps, round(fixed.cost, 4)) == ("Submitted", 5, 0.05)
    assert fixed.model == "scripted/calc-fixed-model" and "+    return a + b" in fixed.submission
    looping = by_name(runs, "calc-looping")
    assert (looping.exit_status, looping.steps, round(looping.cost, 4)) == ("LimitsExceeded", 3, 0.06)
    crashed = by_name(runs, "calc-crashed")
    assert crashed.path.name == "trajectory.jsonl" and crashed.exit_status == "" and crashed.steps == 2
    mini = by_name(runs, "mini-calc")
    assert (mini.exit_status, mini.steps, mini.cost) == ("Submitted", 3, 3.0)
    assert mini.model == "mini-deterministic" and "+    return a + b" in mini.submission
    assert by_name(runs, "broken.traj.json").exit_status == "unreadable"
    assert not fixed.messages, "the list keeps no messages in memory"


def test_missing_and_empty_paths_are_clear_errors(tmp_path):
    with pytest.raises(TrajectoryError, match="does not exist"):
        find_runs(tmp_path / "nope")
    with pytest.raises(TrajectoryError, match="no trajectories"):
        find_runs(tmp_path)


def test_filter_terms(saved_runs):
    assert parse_filter('status:sub calc text:"return a + b" foo:bar') == [
        ("status", "sub"),
        ("", "calc"),
        ("text", "return a + b"),
        ("", "foo:bar"),
    ]
    runs = runs_at(saved_runs)
    names = lambda q: sorted(r.name for r in filter_runs(runs, q))  # noqa: E731
    assert names("status:submitted") == ["calc-fixed", "mini-calc"]
    assert names("calc status:limits") == ["calc-looping"]
    assert names("model:mini") == ["mini-calc"]
    assert names('text:"grep -n"') == ["calc-crashed", "calc-fixed"]
    assert names("") == names("   ") and len(names("")) == 5


def test_messages_of_every_format_read_as_text():
    assert message_text(
        {"content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "input": {"command": "ls"}}]}
    ) == ("hi\n\n```bash\nls\n```")
    assert "pwd" in message_text(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"arguments": '{"command": "pwd"}'}}],
        }
    )
    responses = {
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "function_call", "arguments": '{"command": "id"}'},
        ]
    }
    assert message_text(responses) == "ok\n\n```bash\nid\n```"
    steps = pages(
        [{"role": "system"}, {"role": "user"}, {"role": "assistant"}, {"role": "user"}, {"role": "exit"}]
    )
    assert [len(s) for s in steps] == [2, 3]


def _scenario(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_run_list_filter_sort_and_open(saved_runs):
    async def scenario():
        app = InspectorApp(runs_at(saved_runs))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunListScreen), what="the run list")
            text = screen_text(app)
            for expected in (
                "calc-fixed",
                "Submitted",
                "LimitsExceeded",
                "mini-calc",
                "$3.0000",
                "unreadable",
            ):
                assert expected in text
            assert re.search(r"calc-looping\s+LimitsExceeded\s+3\s+\$0\.0600", text)
            assert "5 of 5 runs │ 2 submitted" in text

            await pilot.press("f", *"status:submitted")
            await wait_for(pilot, lambda: "2 of 5 runs" in screen_text(app), what="the filter")
            assert "calc-looping" not in screen_text(app)
            await pilot.press("escape", "s")  # sort by status
            assert "sorted by status" in screen_text(app)

            await pilot.press("slash", *["backspace"] * 20, *'text:"grep -n"', "enter")
            await wait_for(
                pilot, lambda: "2 of 5 runs" in screen_text(app) and "calc-crashed" in screen_text(app)
            )
            await pilot.press("s", "s")  # sorted by steps: calc-fixed (5) first
            assert "sorted by steps" in screen_text(app)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
            assert app.title == "calc-fixed · Submitted"
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunListScreen))

    _scenario(scenario())


def test_run_screen_steps_search_diff_and_next_run(saved_runs):
    async def scenario():
        runs = sorted(runs_at(saved_runs), key=lambda r: r.name)
        app = InspectorApp(runs)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunListScreen))
            screen = app.screen
            screen.open_run([r.name for r in screen.shown].index("calc-fixed"))
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
            run_screen = app.screen
            assert "step 0/5" in screen_text(app) and "SYSTEM" in screen_text(app)
            messages = run_screen.query_one("#messages")
            await pilot.resize_terminal(120, 24)  # now the opening page is taller than the screen
            await wait_for(pilot, lambda: messages.max_scroll_y > 6, what="the opening page laid out")
            await pilot.press("j", "j", "k")
            assert messages.scroll_target_y == 3
            await pilot.resize_terminal(*SIZE)
            await pilot.press("l")
            assert "step 1/5" in screen_text(app) and "cat calc.py" in screen_text(app)
            assert "return a - b" in screen_text(app), "the observation is on the same page"
            await pilot.press("$")
            text = screen_text(app)
            assert "step 5/5" in text and "EXIT · Submitted" in text
            await pilot.press("h")
            assert "step 4/5" in screen_text(app) and "echo fixed" in screen_text(app)
            await pilot.press("0")
            assert "step 0/5" in screen_text(app)

            await pilot.press("slash", *"sed -i", "enter")
            await wait_for(pilot, lambda: "step 3/5" in screen_text(app), what="the first match")
            assert "1/1 steps match 'sed -i'" in screen_text(app)
            await pilot.press("n")
            assert "step 3/5" in screen_text(app), "one match only: n stays"
            await pilot.press("slash", *["backspace"] * 10, *"calc.py", "enter")
            assert run_screen.matches == [1, 2, 3, 5], "step 4 runs `import calc`, not calc.py"
            assert "3/4 steps match 'calc.py'" in screen_text(app)
            await pilot.press("n")
            assert "step 5/5" in screen_text(app) and "4/4 steps match" in screen_text(app)
            await pilot.press("N", "N")
            assert "step 2/5" in screen_text(app)

            await pilot.press("d")
            text = screen_text(app)
            assert "submitted diff" in text and "+    return a + b" in text and "-    return a - b" in text
            svg = app.export_screenshot()
            assert _line_style(svg, "+    return a + b") != _line_style(svg, "-    return a - b"), (
                "diff lines are coloured"
            )
            await pilot.press("d")
            assert "submitted diff" not in screen_text(app)

            await pilot.press("L")  # calc-looping
            await wait_for(pilot, lambda: app.title == "calc-looping · LimitsExceeded")
            await pilot.press("d")
            assert "(no submission)" in screen_text(app)
            await pilot.press("L")  # mini-calc, the mini-swe-agent run
            await wait_for(pilot, lambda: app.title == "mini-calc · Submitted")
            await pilot.press("l")
            assert "cat calc.py" in screen_text(app) and "return a - b" in screen_text(app)
            await pilot.press("H")
            await wait_for(pilot, lambda: app.title.startswith("calc-looping"))
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, RunListScreen))

    _scenario(scenario())


def _line_style(svg: str, line: str) -> str:
    """The CSS class of the first SVG text span of `line` (Textual writes one span per style run)."""
    for match in re.finditer(r'<text class="([^"]+)"[^>]*>([^<]*)</text>', svg):
        text = unescape(match.group(2)).replace("\xa0", " ")
        if text.strip() and line.startswith(text.strip()[:1]) and line.strip().startswith(text.strip()):
            return match.group(1)
    raise AssertionError(f"{line!r} not in the screenshot")


def test_a_single_file_opens_straight_into_the_run(saved_runs):
    async def scenario():
        path = saved_runs / "mini" / "mini-calc" / "mini-calc.traj.json"
        app = InspectorApp(runs_at(path))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
            assert app.title == "mini-calc · Submitted"
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunListScreen))

    _scenario(scenario())


WREN = [sys.executable, "-m", "wren.cli.main"]


def test_inspect_list_prints_the_runs(saved_runs):
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [*WREN, "inspect", str(saved_runs), "--list", "-f", "status:Submitted"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "calc-fixed" in proc.stdout and "mini-calc" in proc.stdout and "calc-looping" not in proc.stdout
    assert "2 runs, 2 submitted, $3.0500" in proc.stdout
    proc = subprocess.run(
        [*WREN, "inspect", str(saved_runs / "nope")], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr
