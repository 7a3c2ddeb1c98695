"""Task synthesis on a real package: `wren synth` against SWE-smith's procedural modifiers, side by side.

Both tools make one full pass over the same repository (a PyPI sdist with its tests, `git init`-ed)
with the same number of workers, and the script prints, for each: candidates tried, validated tasks
(at least one FAIL_TO_PASS and one PASS_TO_PASS test), distinct validated tasks, yield overall and
per mutator, wall time, and validated tasks per minute, then the ratios and the issue's targets.

SWE-smith 0.0.9 runs from its own virtualenv (so Wren's stays clean). Its generation and validation
entry points need Docker and a GitHub mirror, so this script drives its 13 Python procedural
modifiers the way `swesmith.bug_gen.procedural.generate` does, and validates each candidate the way
`swesmith.harness.valid` does: apply the patch to a clean copy, run the whole test suite with the
profile's pytest command, compare with one clean reference run. To set it up:

    python -m venv /work/swesmith-venv
    /work/swesmith-venv/bin/pip install swesmith==0.0.9 libcst astor python-dotenv rich tqdm tree-sitter \\
        tree-sitter-c tree-sitter-c-sharp tree-sitter-cpp tree-sitter-go tree-sitter-java \\
        tree-sitter-javascript tree-sitter-php tree-sitter-ruby tree-sitter-rust tree-sitter-typescript

Run (the defaults: toolz 1.2.0, 193 tests, a suite of about 2 s; 2 workers):

    .venv/bin/python benchmarks/synth_yield.py --workers 2 --swesmith-python /work/swesmith-venv/bin/python

This file is also the SWE-smith driver: the script runs it under SWE-smith's interpreter with
`--peer`, so that mode imports only the standard library and swesmith.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wren.synth.sdist import prepare_repo

_VERBOSE = re.compile(r"^(\S+::\S.*?)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_stamp_lock = threading.Lock()
_stamp = [1_500_000_000]


# ------------------------------------------------------------------------------------ the repository


# ------------------------------------------------------------------------------------ SWE-smith (peer)


def _peer_test_env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(copy.parent / f"{copy.name}.pycache")
    if (copy / "src").is_dir():
        env["PYTHONPATH"] = "src"
    return env


def _peer_run_tests(python: str, copy: Path, timeout: float) -> tuple[dict[str, str] | None, float]:
    """The profile's test command (`pytest --disable-warnings --color=no --tb=no --verbose`) on the whole suite."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [python, "-m", "pytest", "--disable-warnings", "--color=no", "--tb=no", "--verbose"],
            cwd=copy,
            env=_peer_test_env(copy),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started
    statuses: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        match = _VERBOSE.match(line.strip())
        if match:
            statuses.setdefault(match.group(1), match.group(2))
    return statuses, time.monotonic() - started


def _touch(copy: Path, patch: str) -> None:
    # A fresh container per candidate never sees stale byte code; a reused copy must make sure of it.
    for path in re.findall(r"^\+\+\+ b/(.+)$", patch, flags=re.MULTILINE):
        with _stamp_lock:
            _stamp[0] += 1
            stamp = _stamp[0]
        os.utime(copy / path, (stamp, stamp))


def _is_test_path(root: str, name: str) -> bool:
    """SWE-smith's RepoProfile._is_test_path for a Python profile (importing swesmith.profiles needs
    docker and GitHub clients)."""
    if name.lower().startswith("test") or name.rsplit(".", 1)[0].endswith("test"):
        return True
    return any(part in ("tests", "test", "specs") for part in root.split("/"))


def peer(repo: Path, workers: int, test_python: str, out: Path, timeout: float) -> None:
    """Generate with SWE-smith's Python procedural modifiers, validate like its harness; write figures."""
    from swesmith.bug_gen.adapters.python import get_entities_from_file_py
    from swesmith.bug_gen.procedural import MAP_EXT_TO_MODIFIERS
    from swesmith.bug_gen.utils import generate_patch_fast

    started = time.monotonic()
    random.seed(24)  # generate.py's default --seed
    entities: list = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            if name.endswith(".py") and not _is_test_path(root, name):
                get_entities_from_file_py(entities, os.path.join(root, name))
    candidates: dict[tuple, tuple[str, str]] = {}
    for pm in MAP_EXT_TO_MODIFIERS[".py"]:
        for entity in [e for e in entities if pm.can_change(e)]:
            bug = pm.modify(entity)
            if not bug:
                continue
            patch = generate_patch_fast(entity, bug, str(repo))
            if patch:
                # generate.py writes one file per (entity, modifier, rewrite hash)
                key = (entity.file_path, entity.name, entity.line_start, pm.name, bug.get_hash())
                candidates[key] = (pm.name, patch)
    generated = time.monotonic()

    scratch = Path(tempfile.mkdtemp(prefix="swesmith-peer-"))
    try:
        copies = []
        for i in range(workers):
            copy = scratch / f"copy{i}"
            shutil.copytree(repo, copy)
            copies.append(copy)
        reference, _ = _peer_run_tests(test_python, copies[0], 900)
        if not reference:
            raise SystemExit("SWE-smith peer: the clean suite ran no tests")
        referenced = time.monotonic()
        free = list(copies)
        lock = threading.Lock()

        def validate(item: tuple[str, str]) -> dict:
            name, patch = item
            with lock:
                copy = free.pop()
            try:
                applied = subprocess.run(
                    ["git", "apply", "-"], input=patch, text=True, cwd=copy, capture_output=True
                )
                if applied.returncode != 0:
                    return {"modifier": name, "status": "apply_failed", "patch": patch}
                _touch(copy, patch)
                statuses, seconds = _peer_run_tests(test_python, copy, timeout)
                subprocess.run(["git", "checkout", "-q", "--", "."], cwd=copy, check=True)
                _touch(copy, patch)
            finally:
                with lock:
                    free.append(copy)
            if statuses is None:
                return {"modifier": name, "status": "timeout", "patch": patch}
            passed = {"PASSED", "XFAIL"}
            f2p = [t for t, s in statuses.items() if reference.get(t) in passed and s not in passed]
            p2p = [t for t, s in statuses.items() if reference.get(t) in passed and s in passed]
            status = "validated" if f2p and p2p else ("f2p_only" if f2p else "no_f2p")
            return {"modifier": name, "status": status, "patch": patch, "f2p": len(f2p), "seconds": seconds}

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(validate, list(candidates.values())))
        finished = time.monotonic()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    per: dict[str, dict[str, int]] = {}
    for r in results:
        entry = per.setdefault(r["modifier"], {"tried": 0, "validated": 0})
        entry["tried"] += 1
        entry["validated"] += r["status"] == "validated"
    validated = [r for r in results if r["status"] == "validated"]
    figures = {
        "entities": len(entities),
        "tried": len(results),
        "validated": len(validated),
        "validated_f2p_only_rule": sum(r["status"] in ("validated", "f2p_only") for r in results),
        "distinct": len({r["patch"] for r in validated}),
        "timeouts": sum(r["status"] == "timeout" for r in results),
        "tests": len(reference),
        "per_mutator": per,
        "seconds": {
            "generate": generated - started,
            "reference": referenced - generated,
            "validate": finished - referenced,
            "total": finished - started,
        },
    }
    out.write_text(json.dumps(figures, indent=2))


# ------------------------------------------------------------------------------------ wren synth


def ours(repo: Path, workers: int, work: Path) -> dict:
    from wren.synth.pipeline import SynthConfig, synthesize

    out = work / "wren"
    shutil.rmtree(out, ignore_errors=True)  # no cached baseline, no resumed attempts
    report = synthesize(
        SynthConfig(repo_dir=str(repo), output=str(out / "tasks.jsonl"), workers=workers, progress=False)
    )
    tasks = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    return {
        "tried": report.tried,
        "validated": report.validated,
        "distinct": len({t["patch"] for t in tasks}),
        "candidates_found": report.candidates,
        "unreached": report.candidates - report.reachable,
        "tests": report.tests,
        "dropped": report.dropped,
        "per_mutator": report.per_mutator,
        "seconds": report.seconds,
    }


def _rate(figures: dict) -> float:
    return 60.0 * figures["validated"] / figures["seconds"]["total"]


def _yield(figures: dict) -> float:
    return figures["validated"] / figures["tried"] if figures["tried"] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="toolz==1.2.0", help="PyPI sdist to use (name==version)")
    parser.add_argument("--repo", default="", help="use this git repository instead of downloading")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--swesmith-python", default="/work/swesmith-venv/bin/python")
    parser.add_argument("--work", default="", help="working directory (default: a temporary one)")
    parser.add_argument("--peer-timeout", type=float, default=90.0, help="SWE-smith's per-instance timeout")
    parser.add_argument("--peer", default="", help=argparse.SUPPRESS)
    parser.add_argument("--test-python", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer:
        peer(Path(args.peer), args.workers, args.test_python, Path(args.out), args.peer_timeout)
        return

    work = Path(args.work or tempfile.mkdtemp(prefix="synth-yield-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo = Path(args.repo).resolve() if args.repo else prepare_repo(args.package, work)
    print(f"repository: {repo} ({args.package if not args.repo else 'given'}); workers: {args.workers}")

    print("running SWE-smith 0.0.9 (13 procedural modifiers, full suite per candidate) ...", flush=True)
    peer_out = work / "swesmith.json"
    subprocess.run(
        [
            args.swesmith_python,
            __file__,
            *("--peer", str(repo), "--workers", str(args.workers), "--test-python", sys.executable),
            *("--out", str(peer_out), "--peer-timeout", str(args.peer_timeout)),
        ],
        check=True,
    )
    theirs = json.loads(peer_out.read_text())
    print("running wren synth (one full pass) ...", flush=True)
    mine = ours(repo, args.workers, work)

    rows = [
        ("test suite (tests)", mine["tests"], theirs["tests"]),
        ("candidates tried", mine["tried"], theirs["tried"]),
        ("validated tasks", mine["validated"], theirs["validated"]),
        ("distinct validated tasks", mine["distinct"], theirs["distinct"]),
        ("yield", f"{_yield(mine):.1%}", f"{_yield(theirs):.1%}"),
        ("wall time, s", f"{mine['seconds']['total']:.1f}", f"{theirs['seconds']['total']:.1f}"),
        ("validated tasks / minute", f"{_rate(mine):.1f}", f"{_rate(theirs):.1f}"),
    ]
    print(f"\n{'':28s}{'wren synth':>14s}{'SWE-smith':>14s}")
    for label, a, b in rows:
        print(f"{label:28s}{a!s:>14s}{b!s:>14s}")
    print(
        f"\nwren: candidates found {mine['candidates_found']}, skipped as unreached by any test {mine['unreached']}; "
        f"dropped {mine['dropped']}; seconds {json.dumps({k: round(v, 1) for k, v in mine['seconds'].items()})}"
    )
    print(
        f"SWE-smith: {theirs['entities']} entities; timeouts {theirs['timeouts']}; validated by its own rule "
        f"(F2P only) {theirs['validated_f2p_only_rule']}; seconds "
        f"{json.dumps({k: round(v, 1) for k, v in theirs['seconds'].items()})}"
    )
    for title, figures in (("wren synth", mine), ("SWE-smith", theirs)):
        print(f"\nyield per mutator, {title}:")
        for name, counts in sorted(figures["per_mutator"].items()):
            tried = counts.get("tried", 0)
            if tried:
                print(
                    f"  {name:32s}{counts.get('validated', 0):5d} / {tried:<5d}{counts.get('validated', 0) / tried:7.0%}"
                )
    speedup = _rate(mine) / _rate(theirs) if _rate(theirs) else float("inf")
    print(f"\nratio, validated tasks per minute (wren / SWE-smith): {speedup:.2f}x")
    print(
        f"ratio, distinct validated tasks (wren / SWE-smith): {mine['distinct'] / max(theirs['distinct'], 1):.2f}x"
    )
    print(
        "targets: "
        f"speed >= 3x {'met' if speedup >= 3 else 'NOT met'}; "
        f"yield >= 80% {'met' if _yield(mine) >= 0.8 else 'NOT met'}; "
        f"more distinct tasks {'met' if mine['distinct'] > theirs['distinct'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
