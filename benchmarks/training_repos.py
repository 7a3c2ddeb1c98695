"""The yield of `wren synth` on each repository of the training list (`src/wren/synth/training_repos.yaml`).

For each repository: download its sdist from PyPI (once), unpack it as a git repository, and run
`wren synth --max N` with a fresh output; print the suite's size, candidates tried, tasks validated,
the wall time (clean baseline included) and seconds per validated task. Run it under the machine's
CPU lock, a few repositories at a time:

    flock /tmp/wren-cpu.lock .venv/bin/python benchmarks/training_repos.py --only toolz,six --max 20

`--json PATH` also writes the figures, in the shape of the list's `measured` entries.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from benchmarks.synth_yield import prepare_repo


def main() -> None:
    from wren.synth.pipeline import SynthConfig, synthesize
    from wren.synth.repos import load_repos

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names (default: all)")
    parser.add_argument("--max", type=int, default=20, help="tasks per repository")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--work", default="/tmp/wren-training-repos")
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    repos = load_repos()
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {r.name for r in repos}
        if unknown:
            raise SystemExit(f"not in the list: {', '.join(sorted(unknown))}")
        repos = [r for r in repos if r.name in wanted]
    work = Path(args.work)
    print(f"python {platform.python_version()}, {args.workers} workers, --max {args.max}", flush=True)
    print(
        f"{'repository':<28}{'role':<10}{'tests':>7}{'stable':>8}{'tried':>7}{'tasks':>7}{'s':>8}{'s/task':>8}"
    )
    results = {}
    for repo in repos:
        source = prepare_repo(repo.spec, work)
        started = time.monotonic()
        report = synthesize(
            SynthConfig(
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
        )
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
