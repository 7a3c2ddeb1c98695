"""The yield of `wren synth` on each repository of the training list (`src/wren/synth/training_repos.yaml`).

For each repository: download its sdist from PyPI (once), unpack it as a git repository, and run
`wren synth --max N` with a fresh output; print the suite's size, candidates tried, tasks validated,
the wall time (clean baseline included) and seconds per validated task. Run it under the machine's
CPU lock, a few repositories at a time:

    flock /tmp/wren-cpu.lock .venv/bin/python benchmarks/training_repos.py --only toolz,six --max 20

`--json PATH` also writes the figures, in the shape of the list's `measured` entries. `--audit`
checks the hint ladder on the tasks already made in `--work` instead (no synthesis): the fix never
shows below L4, L0 names no test, file or line, L3's lines are what the broken file holds there,
and putting L4's lines in their place gives the clean file.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.synth_yield import prepare_repo


def _file_at(entry: Path, commit: str, path: str) -> list[str]:
    from wren.synth.ladder import split_lines

    show = ["git", "show", f"{commit}:{path}"]
    return split_lines(subprocess.run(show, cwd=entry, capture_output=True, text=True, check=True).stdout)


def audit(task: dict[str, Any], repos: Path) -> list[str]:
    """What is wrong with the task's ladder ([] when nothing is)."""
    from wren.synth.ladder import statement_at
    from wren.synth.statement import names_a_test, names_of_tests

    problems = []
    mutation = task["mutation"]
    must = "\n".join(line.strip() for line in mutation["must"])
    for level in (0, 1, 2, 3):
        flat = "\n".join(line.strip() for line in statement_at(task, level).splitlines())
        if must and must in flat:
            problems.append(f"the fix shows at L{level}")
    issue = statement_at(task, 0)
    if names_a_test(issue, names_of_tests(task["FAIL_TO_PASS"])) or re.search(r"\.py\b|\bline \d+", issue):
        problems.append("L0 names a test, file or line")
    entry = repos / task["repo"].replace("/", "__")
    broken = _file_at(entry, task["base_commit"], mutation["file"])
    clean = _file_at(entry, task["clean_commit"], mutation["file"])
    start, now = mutation["line"], mutation["now"]
    if now:
        shown = broken[start - 1 : start - 1 + len(now)] == now
        fixed = broken[: start - 1] + mutation["must"] + broken[start - 1 + len(now) :]
    else:
        shown = start == 0 or broken[start - 1] == mutation["after"]
        fixed = broken[:start] + mutation["must"] + broken[start:]
    if not shown:
        problems.append("L3's lines are not what the broken file holds")
    if fixed != clean:
        problems.append("L4's lines do not give the clean file")
    return problems


def run_audit(names: list[str], work: Path) -> None:
    print(
        f"{'repository':<20}{'tasks':>7}{'one line':>10}{'several':>9}{'removal':>9}{'quotes':>8}{'problems':>10}"
    )
    for name in names:
        path = work / "tasks" / f"{name}.jsonl"
        if not path.is_file():
            print(f"{name:<20} no tasks file")
            continue
        counts: Counter = Counter()
        for line in path.read_text().splitlines():
            task = json.loads(line)
            mutation = task["mutation"]
            counts["tasks"] += 1
            kind = "removal" if not mutation["now"] else "several" if len(mutation["now"]) > 1 else "one line"
            counts[kind] += 1
            counts["quotes"] += any("'" in m or '"' in m for m in mutation["must"])
            for problem in audit(task, path.parent / "repos"):
                counts["problems"] += 1
                print(f"  {task['instance_id']}: {problem}")
        print(
            f"{name:<20}{counts['tasks']:>7}{counts['one line']:>10}{counts['several']:>9}{counts['removal']:>9}"
            f"{counts['quotes']:>8}{counts['problems']:>10}"
        )


def main() -> None:
    from wren.exceptions import WrenError
    from wren.synth.pipeline import SynthConfig, synthesize
    from wren.synth.repos import load_repos

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names (default: all)")
    parser.add_argument("--max", type=int, default=20, help="tasks per repository")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--work", default="/tmp/wren-training-repos")
    parser.add_argument("--json", default="")
    parser.add_argument("--audit", action="store_true", help="check the ladder of the tasks made before")
    args = parser.parse_args()

    repos = load_repos()
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {r.name for r in repos}
        if unknown:
            raise SystemExit(f"not in the list: {', '.join(sorted(unknown))}")
        repos = [r for r in repos if r.name in wanted]
    work = Path(args.work)
    if args.audit:
        run_audit([r.name for r in repos], work)
        return
    print(f"python {platform.python_version()}, {args.workers} workers, --max {args.max}", flush=True)
    print(
        f"{'repository':<28}{'role':<10}{'tests':>7}{'stable':>8}{'tried':>7}{'tasks':>7}{'s':>8}{'s/task':>8}"
    )
    results = {}
    for repo in repos:
        source = prepare_repo(repo.spec, work)
        started = time.monotonic()
        config = SynthConfig(
            repo_dir=str(source),
            output=str(work / "tasks" / f"{repo.name}.jsonl"),
            owner="pypi",
            name=repo.name,
            max_tasks=args.max,
            workers=args.workers,
            timeout=args.timeout,
            test_cmd=repo.test_cmd,
            python=sys.executable,
            overwrite=True,
            progress=False,
        )
        try:
            report = synthesize(config)
        except WrenError as e:
            print(f"{repo.spec:<28}{repo.role:<10} failed: {str(e).splitlines()[0]}", flush=True)
            results[repo.name] = {"error": str(e).splitlines()[0]}
            continue
        seconds = time.monotonic() - started
        per_task = seconds / report.validated if report.validated else float("nan")
        print(
            f"{repo.spec:<28}{repo.role:<10}{report.tests:>7}{report.stable_tests:>8}{report.tried:>7}"
            f"{report.validated:>7}{seconds:>8.1f}{per_task:>8.1f}",
            flush=True,
        )
        results[repo.name] = {
            "max_tasks": args.max,
            "tried": report.tried,
            "validated": report.validated,
            "seconds": round(seconds, 1),
            "tests": report.tests,
            "stable_tests": report.stable_tests,
            "baseline_seconds": round(report.seconds.get("baseline", 0.0), 1),
            "dropped": report.dropped,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
