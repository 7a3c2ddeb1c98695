"""`wren synth` end to end: snapshot, baseline, candidates, parallel validation, tasks.

Results are processed in candidate order whatever the worker timing, so the same seed gives the
same tasks in the same order. Every decision is logged as it is made (tasks to the output file,
all attempts to the cache directory), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import random
import shutil
import tempfile
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wren.synth import baseline as baseline_mod
from wren.synth.config import SynthConfig, SynthReport
from wren.synth.discover import Candidate, repo_candidates, source_files
from wren.synth.environment import check_imports_from_copy, suite_environment
from wren.synth.mutators import get_mutators
from wren.synth.snapshot import BrokenState, Snapshot, commit_broken_states, file_modes, take_snapshot
from wren.synth.statement import StatementWriter
from wren.synth.tasks import instance_id, read_instance_ids, task_record, unified_diff
from wren.synth.testrun import SynthError, TestCommand, default_test_command, parse_test_command
from wren.synth.validate import DUPLICATE, ValidationSettings, Verdict, Workspace, validate

log = logging.getLogger(__name__)

__all__ = ["SynthConfig", "SynthReport", "order_candidates", "synthesize"]


def order_candidates(candidates: list[Candidate], seed: int) -> list[Candidate]:
    """Shuffle each mutator's candidates and deal them out in turn, so any prefix mixes all kinds."""
    rng = random.Random(seed)
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.mutator, []).append(c)
    names = sorted(groups)
    rng.shuffle(names)
    for name in names:
        rng.shuffle(groups[name])
    out: list[Candidate] = []
    depth = max((len(g) for g in groups.values()), default=0)
    for i in range(depth):
        out.extend(groups[name][i] for name in names if i < len(groups[name]))
    return out


def own_packages(files: list[str]) -> frozenset[str]:
    """Top-level import names the repository's source files provide."""
    names = set()
    for path in files:
        parts = path.split("/")
        if parts[0] == "src" and len(parts) > 1:
            parts = parts[1:]
        names.add(parts[0].removesuffix(".py"))
    return frozenset(names)


def _task_command(command: TestCommand) -> str:
    args = list(command.args)
    if not any(a.startswith("-r") and "A" in a for a in args):
        args.insert(0, "-rA")
    return TestCommand(command.env, args).shell()


def _build_model(config: SynthConfig) -> Any:
    if not config.model and not config.slm:
        return None
    try:
        from wren.models import get_model
    except ImportError as e:
        raise SynthError(
            f"model-written statements need wren's model layer, which is not available: {e}"
        ) from e
    return get_model(config.model, slm=config.slm or None)


def _repair_jsonl(path: Path) -> None:
    """Cut a torn last line (an interrupted write) so appended lines stay whole."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _read_attempts(path: Path) -> dict[str, dict[str, Any]]:
    attempts: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                attempts[entry["id"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return attempts


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def update(self, advance: int, description: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=advance, description=description)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def synthesize(config: SynthConfig) -> SynthReport:
    """Run task synthesis as configured; returns what it did (tasks go to `config.output`)."""
    started = time.monotonic()
    report = SynthReport()
    repo_dir = Path(config.repo_dir).resolve()
    if not repo_dir.is_dir():
        raise SynthError(f"repository directory {config.repo_dir} does not exist")
    output = Path(config.output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    repos_dir = Path(config.repos_dir).resolve() if config.repos_dir else output.parent / "repos"
    mutators = get_mutators(config.mutators or None)
    command = parse_test_command(config.test_cmd) if config.test_cmd else default_test_command(repo_dir)
    model = _build_model(config)

    cache_root = Path(config.cache_dir).resolve() if config.cache_dir else output.parent / ".wren-synth"
    snapshot = take_snapshot(
        repo_dir, repos_dir, config.owner, config.name, exclude=[output, cache_root, repos_dir]
    )
    report.repo, report.snapshot, report.repos_entry, report.output = (
        snapshot.repo,
        snapshot.commit,
        str(snapshot.entry),
        str(output),
    )
    cache = cache_root / f"{snapshot.owner}__{snapshot.name}"
    attempts_path = cache / f"attempts-{snapshot.commit[:12]}.jsonl"
    baseline_path = cache / f"baseline-{snapshot.commit[:12]}.json"
    if config.overwrite:
        output.unlink(missing_ok=True)
        attempts_path.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    _repair_jsonl(output)
    _repair_jsonl(attempts_path)
    report.seconds["snapshot"] = time.monotonic() - started

    scratch = Path(tempfile.mkdtemp(prefix="wren-synth-"))
    workspaces: list[Workspace] = []
    stack = contextlib.ExitStack()
    try:
        phase = time.monotonic()
        suite_env = stack.enter_context(
            suite_environment(
                snapshot,
                _task_command(command),
                python=config.python,
                env_cache=config.env_cache,
                scratch=scratch / "environment",
            )
        )
        report.seconds["environment"] = time.monotonic() - phase

        phase = time.monotonic()
        # What the snapshot holds (not the user's ignored files); symlinks are not mutated.
        listing = file_modes(snapshot)
        files = source_files(repo_dir, (path for path, mode in listing.items() if mode != "120000"))
        packages = own_packages(files)
        for i in range(config.workers):
            workspaces.append(
                Workspace(i, snapshot, scratch, suite_env.python, command, packages, suite_env.environ)
            )
        if suite_env.judge:
            check_imports_from_copy(workspaces[0], packages)
        report.seconds["workspaces"] = time.monotonic() - phase

        phase = time.monotonic()
        key = {
            "commit": snapshot.commit,
            "test_cmd": command.shell(),
            "python": suite_env.key,
            "runs": config.baseline_runs,
        }
        baseline = baseline_mod.load_cached(baseline_path, key)
        report.baseline_cached = baseline is not None
        if baseline is None:
            servers = [ws.server for ws in workspaces[: config.baseline_runs]]
            baseline = baseline_mod.run_baseline(
                servers, files, runs=config.baseline_runs, timeout=config.suite_timeout
            )
            baseline_mod.save_cached(baseline_path, key, baseline)
        report.tests, report.stable_tests, report.flaky_tests = (
            len(baseline.tests),
            len(baseline.stable),
            baseline.flaky,
        )
        report.seconds["baseline"] = time.monotonic() - phase

        phase = time.monotonic()
        candidates = repo_candidates(workspaces[0].dir, mutators, files)
        report.candidates = len(candidates)
        per_mutator: dict[str, Counter] = {m.name: Counter() for m in mutators}
        reachable = []
        for c in candidates:
            per_mutator[c.mutator]["found"] += 1
            if baseline.tests_reaching(c.path, c.start_line, c.end_line):
                per_mutator[c.mutator]["reachable"] += 1
                reachable.append(c)
        report.reachable = len(reachable)
        ordered = order_candidates(reachable, config.seed)
        attempts = _read_attempts(attempts_path)
        existing = read_instance_ids(output)
        prefix = f"{snapshot.owner}__{snapshot.name}-"
        have = sum(1 for i in existing if i.startswith(prefix))
        todo = []
        for c in ordered:
            iid = f"{prefix}{c.id}"
            if c.id in attempts or iid in existing:
                report.skipped_done += 1
            else:
                todo.append(c)
        report.seconds["discover"] = time.monotonic() - phase

        phase = time.monotonic()
        writer = StatementWriter(snapshot.repo, files, model)
        settings = ValidationSettings(
            timeout=config.timeout,
            min_timeout=_warm_up(workspaces, config.suite_timeout),
            confirm_runs=config.confirm_runs,
        )
        _validate_all(
            todo,
            workspaces,
            baseline,
            settings,
            writer,
            snapshot=snapshot,
            task_cmd=_task_command(command),
            output=output,
            attempts_path=attempts_path,
            remaining=(config.max_tasks - have) if config.max_tasks else None,
            hint_level=config.hint_level,
            progress=config.progress,
            report=report,
            per_mutator=per_mutator,
        )
        report.seconds["validate"] = time.monotonic() - phase
        report.per_mutator = {name: dict(counts) for name, counts in per_mutator.items()}
    finally:
        for ws in workspaces:
            ws.close()
        stack.close()
        shutil.rmtree(scratch, ignore_errors=True)
        report.seconds["total"] = time.monotonic() - started
    return report


def _warm_up(workspaces: list[Workspace], timeout: float) -> float:
    """Collect the suite once in every copy (so byte code is cached before timed runs start) and
    return the timeout floor: a few times the slowest collection, at least 3 s, so that a slow
    machine does not turn ordinary runs into timeouts."""
    with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
        runs = list(
            pool.map(lambda ws: ws.server.run(extra_args=["--collect-only"], timeout=timeout), workspaces)
        )
    return max(3.0, 4.0 * max(run.elapsed for run in runs))


def _validate_all(
    todo: list[Candidate],
    workspaces: list[Workspace],
    baseline: baseline_mod.Baseline,
    settings: ValidationSettings,
    writer: StatementWriter,
    *,
    snapshot: Snapshot,
    task_cmd: str,
    output: Path,
    attempts_path: Path,
    remaining: int | None,
    hint_level: int,
    progress: bool,
    report: SynthReport,
    per_mutator: dict[str, Counter],
) -> None:
    free: queue.Queue[Workspace] = queue.Queue()
    for ws in workspaces:
        free.put(ws)

    def job(candidate: Candidate) -> Verdict:
        ws = free.get()
        try:
            verdict = validate(candidate, ws, baseline, settings)
        finally:
            free.put(ws)
        return verdict

    if remaining is not None and remaining <= 0:
        return
    modes = file_modes(snapshot)
    seen_texts: set[str] = set()
    batch: list[Verdict] = []
    pending_attempts: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    bar = _Progress(progress, remaining if remaining is not None else len(todo), "validating")

    def flush() -> None:
        nonlocal last_flush
        if batch:
            states = [BrokenState(instance_id(snapshot, v), v.candidate.path, v.broken_text) for v in batch]
            commits = commit_broken_states(snapshot, states, modes)
            with open(output, "a") as out:
                for verdict, commit in zip(batch, commits, strict=True):
                    patch, statement = statements.pop(verdict.candidate.id)
                    text, source = statement.result()
                    record = task_record(
                        snapshot,
                        verdict,
                        base_commit=commit,
                        patch=patch,
                        test_cmd=task_cmd,
                        statement=text,
                        statement_source=source,
                        issue=writer.issue(verdict, patch),
                        hint_level=hint_level,
                    )
                    out.write(json.dumps(record) + "\n")
            batch.clear()
        if pending_attempts:
            with open(attempts_path, "a") as f:
                f.writelines(json.dumps(a) + "\n" for a in pending_attempts)
            pending_attempts.clear()
        last_flush = time.monotonic()

    pool = ThreadPoolExecutor(max_workers=len(workspaces), thread_name_prefix="synth")
    # Statements are written only for tasks that are kept; a model may write several at once.
    writers = ThreadPoolExecutor(max_workers=len(workspaces), thread_name_prefix="synth-statement")
    statements: dict[str, tuple[str, Future]] = {}
    in_flight: deque[Future] = deque()
    source = iter(todo)
    stopping = False
    try:
        while True:
            while not stopping and len(in_flight) < 2 * len(workspaces):
                candidate = next(source, None)
                if candidate is None:
                    break
                in_flight.append(pool.submit(job, candidate))
            if not in_flight:
                break
            verdict = in_flight.popleft().result()
            candidate = verdict.candidate
            if verdict.validated:
                digest = hashlib.sha1(f"{candidate.path}\0{verdict.broken_text}".encode()).hexdigest()
                if digest in seen_texts:
                    verdict.status, verdict.reason = "dropped", DUPLICATE
                seen_texts.add(digest)
            report.tried += 1
            per_mutator[candidate.mutator]["tried"] += 1
            attempt = {
                "id": candidate.id,
                "mutator": candidate.mutator,
                "path": candidate.path,
                "function": candidate.function,
                "lines": [candidate.start_line, candidate.end_line],
                "tests_run": verdict.selected,
                "seconds": round(verdict.elapsed, 3),
                "status": verdict.status,
            }
            if verdict.validated:
                patch = unified_diff(candidate.path, verdict.broken_text, candidate.file.text)
                statements[candidate.id] = (patch, writers.submit(writer.write, verdict, patch))
                report.validated += 1
                per_mutator[candidate.mutator]["validated"] += 1
                attempt["instance_id"] = instance_id(snapshot, verdict)
                batch.append(verdict)
            else:
                report.dropped[verdict.reason] = report.dropped.get(verdict.reason, 0) + 1
                attempt["reason"] = verdict.reason
            pending_attempts.append(attempt)
            bar.update(
                1 if remaining is None or verdict.validated else 0,
                f"validating: {report.validated} tasks / {report.tried} tried",
            )
            if remaining is not None and report.validated >= remaining:
                stopping = True
                for future in in_flight:
                    future.cancel()
                in_flight.clear()
            if len(batch) >= 32 or time.monotonic() - last_flush > 10:
                flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        flush()
        writers.shutdown(wait=True)
        bar.close()
