"""A pytest runner that forks a fresh child for each request, so no run pays for starting Python
and importing pytest again, and no run sees modules imported by another.

Standalone on purpose (the standard library and pytest only): it runs under the interpreter of the
repository being tested, which need not be Wren's. Started as `python pytest_server.py [--no-preload
PKG,...]` in the repository copy it serves (the named top-level packages are the repository's own
and are never imported ahead of a run), it reads one JSON request per line on stdin and answers one JSON line on
stdout:

    request: {"args": [...], "result": PATH, "log": PATH, "timeout": SECONDS,
              "select": [NODEID, ...] | null, "trace": [RELPATH, ...] | null}
    reply:   {"status": "done" | "timeout" | "crashed", "exit_code": INT, "elapsed": SECONDS}

The child writes its findings to `result` as JSON: per-test outcomes, durations and failures and,
when `trace` names source files, which of their lines each test ran.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import threading
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))


class LineTracer:
    """Which lines of the traced files each test runs (and which run outside any test)."""

    def __init__(self, root, relpaths):
        self.root = root
        self.wanted = set(relpaths)
        self.by_test = {}
        self.outside = {}
        self.current = None
        self._rel = {}
        self._monitoring_tool = None

    def _relpath(self, filename):
        rel = self._rel.get(filename, 0)
        if rel == 0:
            try:
                path = os.path.relpath(os.path.realpath(filename), self.root).replace(os.sep, "/")
            except ValueError:
                path = None
            rel = path if path in self.wanted else None
            self._rel[filename] = rel
        return rel

    def _sink(self, rel):
        target = self.current if self.current is not None else self.outside
        lines = target.get(rel)
        if lines is None:
            lines = target[rel] = set()
        return lines

    def start(self):
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is not None:
            for tool in (monitoring.COVERAGE_ID, 3, 4):
                try:
                    monitoring.use_tool_id(tool, "wren-synth")
                except ValueError:
                    continue
                self._monitoring_tool = tool
                monitoring.register_callback(tool, monitoring.events.LINE, self._on_line)
                monitoring.set_events(tool, monitoring.events.LINE)
                return
        threading.settrace(self._on_call)
        sys.settrace(self._on_call)

    def stop(self):
        if self._monitoring_tool is not None:
            monitoring = sys.monitoring
            monitoring.set_events(self._monitoring_tool, 0)
            monitoring.free_tool_id(self._monitoring_tool)
            self._monitoring_tool = None
        else:
            sys.settrace(None)
            threading.settrace(None)

    def begin_test(self, nodeid):
        self.current = self.by_test.setdefault(nodeid, {})
        if self._monitoring_tool is not None:
            # Lines were disabled after their first hit; each test needs its own first hits.
            sys.monitoring.restart_events()

    def end_test(self):
        self.current = None
        if self._monitoring_tool is not None:
            sys.monitoring.restart_events()

    def _on_line(self, code, line):
        rel = self._relpath(code.co_filename)
        if rel is not None:
            self._sink(rel).add(line)
        return sys.monitoring.DISABLE

    def _on_call(self, frame, event, arg):
        rel = self._relpath(frame.f_code.co_filename)
        if rel is None:
            return None
        lines = self._sink(rel)
        lines.add(frame.f_lineno)

        def on_line(frame, event, arg):
            if event == "line":
                lines.add(frame.f_lineno)
            return on_line

        return on_line

    def export(self):
        def plain(files):
            return {rel: sorted(lines) for rel, lines in files.items()}

        return {nodeid: plain(files) for nodeid, files in self.by_test.items()}, plain(self.outside)


def _describe(excinfo, root):
    frames = []
    for entry in excinfo.traceback:
        try:
            code = entry.frame.code.raw
            name = getattr(code, "co_qualname", code.co_name)
            path = os.path.relpath(os.path.realpath(str(entry.path)), root).replace(os.sep, "/")
        except Exception:
            continue
        frames.append({"path": path, "function": name, "line": entry.lineno + 1})
    try:
        message = excinfo.exconly()
    except Exception:
        message = excinfo.typename
    return {"type": excinfo.typename, "message": message[:4000], "frames": frames[-30:]}


class Recorder:
    """The pytest plugin: narrows collection to the selected tests and records what happened."""

    def __init__(self, root, select_ids, tracer):
        self.root = root
        self.select = set(select_ids) if select_ids is not None else None
        self.select_files = set()
        self.select_dirs = set()
        for nodeid in self.select or ():
            path = nodeid.split("::", 1)[0]
            self.select_files.add(path)
            parts = path.split("/")
            for i in range(1, len(parts)):
                self.select_dirs.add("/".join(parts[:i]))
        self.tracer = tracer
        self.outcomes = {}
        self.durations = {}
        self.failures = {}
        self.collect_errors = []
        self.subtests = set()

    def _rel(self, path):
        return os.path.relpath(os.path.realpath(str(path)), self.root).replace(os.sep, "/")

    def pytest_ignore_collect(self, collection_path, config):
        if self.select is None:
            return None
        rel = self._rel(collection_path)
        if rel == "." or rel in self.select_dirs or rel in self.select_files:
            return None
        return True

    def pytest_collection_modifyitems(self, session, config, items):
        if self.select is None:
            return
        keep = [item for item in items if item.nodeid in self.select]
        dropped = [item for item in items if item.nodeid not in self.select]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    def pytest_collectreport(self, report):
        if report.failed and not any(e["nodeid"] == report.nodeid for e in self.collect_errors):
            self.collect_errors.append({"nodeid": report.nodeid, "message": str(report.longrepr)[-4000:]})

    def pytest_runtest_logstart(self, nodeid, location):
        if self.tracer is not None:
            self.tracer.begin_test(nodeid)

    def pytest_runtest_logfinish(self, nodeid, location):
        if self.tracer is not None:
            self.tracer.end_test()

    def pytest_exception_interact(self, node, call, report):
        nodeid = getattr(report, "nodeid", None)
        if call is None or call.excinfo is None:
            return
        if type(report).__name__ == "CollectReport":
            described = _describe(call.excinfo, self.root)
            self.collect_errors.append({"nodeid": nodeid or "", "message": described["message"], **described})
        elif nodeid and nodeid not in self.failures:
            self.failures[nodeid] = _describe(call.excinfo, self.root)

    def pytest_runtest_logreport(self, report):
        nodeid = report.nodeid
        self.durations[nodeid] = self.durations.get(nodeid, 0.0) + (report.duration or 0.0)
        if type(report).__name__ != "TestReport" or getattr(report, "context", None) is not None:
            # A subtest's report: the test's own line in `-rA` may not tell its failure.
            self.subtests.add(nodeid)
            return
        wasxfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if report.passed:
                status = "xpassed" if wasxfail else "passed"
            elif report.failed:
                status = "failed"
            else:
                status = "xfailed" if wasxfail else "skipped"
        elif report.failed:
            status = "error"
        elif report.skipped and report.when == "setup":
            status = "xfailed" if wasxfail else "skipped"
        else:
            return
        if self.outcomes.get(nodeid) in ("failed", "error") and status == "passed":
            return
        self.outcomes[nodeid] = status

    def result(self, exit_code):
        out = {
            "exit_code": int(exit_code),
            "outcomes": self.outcomes,
            "durations": self.durations,
            "failures": self.failures,
            "collect_errors": self.collect_errors,
            "subtests": sorted(self.subtests),
        }
        if self.tracer is not None:
            out["lines"], out["outside"] = self.tracer.export()
        return out


def _child(request):
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    import pytest

    root = os.getcwd()
    sys.path.insert(0, root)  # as `python -m pytest` does
    tracer = None
    if request.get("trace") is not None:
        tracer = LineTracer(root, request["trace"])
        tracer.start()
    recorder = Recorder(root, request.get("select"), tracer)
    try:
        code = pytest.main(list(request["args"]), plugins=[recorder])
    finally:
        if tracer is not None:
            tracer.stop()
    tmp = request["result"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(recorder.result(code), f)
    os.replace(tmp, request["result"])
    sys.stdout.flush()
    sys.stderr.flush()


def _wait(pid, timeout):
    """Wait for a child; True if it ended in time."""
    deadline = time.monotonic() + timeout
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
    try:
        while True:
            ended, _ = os.waitpid(pid, os.WNOHANG)
            if ended:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(left, 0.005))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_group(pid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_running = []


def _on_term(signum, frame):
    for pid in _running:
        _kill_group(pid)
    os._exit(1)


def serve(stdin, stdout):
    signal.signal(signal.SIGTERM, _on_term)
    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                _child(request)
            except BaseException:
                traceback.print_exc()
                status = 3
            finally:
                os._exit(status)
        _running.append(pid)
        with contextlib.suppress(OSError):  # the child may have done it first
            os.setpgid(pid, pid)
        if _wait(pid, float(request.get("timeout") or 3600)):
            status = "done"
        else:
            status = "timeout"
            _kill_group(pid)
            os.waitpid(pid, 0)
        # Whatever the tests started and left behind goes with them.
        _kill_group(pid)
        _running.remove(pid)
        exit_code = 0
        if status == "done" and not os.path.exists(request["result"]):
            status = "crashed"
            exit_code = 3
        reply = {"status": status, "exit_code": exit_code, "elapsed": time.monotonic() - started}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


def _prewarm(skip):
    # What every child imports first, done once here and inherited by each fork: pytest, its
    # built-in plugins, and installed plugins (unless they belong to the repository under test,
    # whose modules must be imported fresh by each child).
    import pytest  # noqa: F401
    from _pytest import config

    for name in getattr(config, "default_plugins", ()):
        with contextlib.suppress(Exception):
            __import__("_pytest." + name)
    try:
        from importlib.metadata import entry_points

        eps = entry_points()
        group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    except Exception:
        return
    for ep in group:
        if ep.value.split(":")[0].split(".")[0] in skip:
            continue
        with contextlib.suppress(Exception):
            ep.load()


def main():
    # This file's directory must not shadow modules of the repository under test.
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(_HERE)]
    skip = set()
    if len(sys.argv) > 2 and sys.argv[1] == "--no-preload":
        skip = {name for name in sys.argv[2].split(",") if name}
    _prewarm(skip)
    # Children would otherwise copy every inherited page the first time their garbage collector
    # walks the heap (pytest collects at the end of each session); frozen objects are never walked.
    gc.freeze()
    protocol = sys.stdout
    sys.stdout = sys.stderr
    serve(sys.stdin, protocol)


if __name__ == "__main__":
    main()
