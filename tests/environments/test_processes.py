"""Process cleanup owned by the environments package: real child processes, real sessions."""

from __future__ import annotations

import subprocess

from wren.environments.guard import ensure_guard
from wren.environments.processes import WATCHER_NAME, kill_child_sessions, kill_marked, marked_pids


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def test_child_sessions_are_killed_and_container_watchers_spared():
    # A watcher is `sh -c SCRIPT wren-container-watcher ...`: its argv names it.
    watcher = subprocess.Popen(
        ["sh", "-c", "read -r _", WATCHER_NAME], stdin=subprocess.PIPE, start_new_session=True
    )
    command = subprocess.Popen(["sleep", "300"], start_new_session=True)
    guard = ensure_guard()
    try:
        kill_child_sessions()
        assert command.wait(timeout=60) != 0  # killed
        assert _alive(watcher)
        assert guard is not None and _alive(guard)
    finally:
        watcher.stdin.close()
        watcher.wait(timeout=60)
        command.kill()
        command.wait()


def test_kill_marked_ends_every_process_with_the_marker_and_only_those(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "WREN_RUN_MARKER": "probe-token:1"}
    other = {"PATH": "/usr/bin:/bin", "WREN_RUN_MARKER": "other-token:1"}
    marked = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    unmarked = subprocess.Popen(["sleep", "300"], env=other, start_new_session=True)
    try:
        assert marked_pids("probe-token:", prefix=True) == [marked.pid]
        assert kill_marked("probe-token:", prefix=True) == 1
        assert marked.wait(timeout=60) != 0
        assert _alive(unmarked)
    finally:
        for proc in (marked, unmarked):
            proc.kill()
            proc.wait()


def test_the_guard_ends_a_torn_trajectory_with_killed_and_leaves_a_finished_one(tmp_path):
    import json

    from wren.environments.guard import finish_trajectory

    torn = tmp_path / "torn.jsonl"
    torn.write_text(json.dumps({"step": 0, "messages": []}) + '\n{"step": 1, "messa')
    finish_trajectory(torn, "killed")
    records = [json.loads(line) for line in torn.read_text().splitlines()]
    assert [r.get("step") for r in records] == [0, None]
    assert records[-1]["messages"][0]["extra"]["exit_status"] == "Killed"
    done = tmp_path / "done.jsonl"
    end = {"messages": [{"role": "exit", "extra": {"exit_status": "Submitted"}}]}
    done.write_text(json.dumps(end) + "\n")
    finish_trajectory(done, "killed")
    assert done.read_text() == json.dumps(end) + "\n"
