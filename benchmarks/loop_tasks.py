"""Helpers for the benchmarks that run the learning loop's stages on tasks synthesized from a repository."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.synth_yield import prepare_repo


def add_loop_options(
    parser: argparse.ArgumentParser, *, work: str, repo: str, tasks: int, step_limit: int, temperature: float
) -> None:
    """The options these benchmarks share: the work directory, the task repository and the agent's limits."""
    parser.add_argument("--work", default=work)
    parser.add_argument("--repo", default=repo, help="PyPI sdist the tasks come from")
    parser.add_argument("--repo-dir", default="", help="A local git repository instead of --repo")
    parser.add_argument("--tasks", type=int, default=tasks)
    parser.add_argument("--step-limit", type=int, default=step_limit)
    parser.add_argument("--max-output-tokens", type=int, default=192)
    parser.add_argument("--temperature", type=float, default=temperature)
    parser.add_argument("--workers", type=int, default=2)


def synth_tasks(loop: Any, kind: str, repo: Path, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first `n` `kind` tasks ("train" or "heldout") synthesized from `repo` (a resumable stage), and
    the stage's result."""
    synth = loop.stages.run(
        f"synth-{kind}", lambda: loop._synth([str(repo)], loop.work / "tasks" / f"{kind}.jsonl", n)
    )
    return loop.tasks(kind)[:n], synth


def loop_on_tasks(
    args: argparse.Namespace, kind: str, **config: Any
) -> tuple[Any, Path, list[dict[str, Any]], dict[str, Any]]:
    """A Loop in --work (`config`: more LoopConfig keys) with its `kind` tasks from --repo or --repo-dir.

    Returns the loop, the repository, its tasks and the synthesis stage's result.
    """
    from wren.learn.loop import Loop, LoopConfig

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo = Path(args.repo_dir) if args.repo_dir else prepare_repo(args.repo, work / "src")
    repos: dict[str, Any] = {"train_repos": [], "heldout_repos": [], f"{kind}_repos": [str(repo)]}
    loop = Loop(
        LoopConfig(
            work_dir=str(work), **repos, **{f"{kind}_tasks": args.tasks}, step_limit=args.step_limit,
            temperature=args.temperature, max_output_tokens=args.max_output_tokens, workers=args.workers,
            **config,
        ),
        log=lambda line: print(line, flush=True),
    )  # fmt: skip
    tasks, synth = synth_tasks(loop, kind, repo, args.tasks)
    if not tasks:
        raise SystemExit(f"no tasks were synthesized from {repo}")
    return loop, repo, tasks, synth
