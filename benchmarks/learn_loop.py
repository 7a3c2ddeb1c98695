"""`wren learn loop` end to end on real repositories: stage-by-stage times, and the tuned model
against the base model (its peer, measured in the same run) on held-out tasks.

Training tasks come from PyPI sdists (two by default), held-out tasks from another (never trained on).
Run (the default size; --small for a quick pass that shows every stage works):

    .venv/bin/python benchmarks/learn_loop.py --work /tmp/wren-loop [--small] [--base-training-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synth_yield import prepare_repo  # noqa: E402

TRAIN_REPOS = ["toolz==1.2.0", "cachetools==5.5.0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/wren-loop")
    parser.add_argument(
        "--train-repo",
        action="append",
        help="PyPI sdist trained on (repeatable; default toolz==1.2.0 and cachetools==5.5.0)",
    )
    parser.add_argument("--heldout-repo", default="more-itertools==10.5.0")
    parser.add_argument("--small", action="store_true", help="2 held-out tasks, 1 seed, short runs")
    parser.add_argument("--base-training-dir", default="")
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="LoopConfig key=value (repeatable)"
    )
    args = parser.parse_args()

    from wren.config.loader import merge_overrides
    from wren.learn.loop import Loop, LoopConfig

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    # Two training repositories: one alone teaches its own package name into every command.
    train_repos = [prepare_repo(spec, work / "src") for spec in args.train_repo or TRAIN_REPOS]
    heldout_repo = prepare_repo(args.heldout_repo, work / "src")
    size = (
        {"train_tasks": 6, "heldout_tasks": 2, "seeds": [0], "step_limit": 3, "max_output_tokens": 96,
         "rollouts": False, "sft": {"max_steps": 8, "max_length": 1024, "learning_rate": 2e-4}}
        if args.small
        else {}
    )  # fmt: skip
    config = LoopConfig(
        work_dir=str(work / "loop"),
        train_repos=[str(r) for r in train_repos],
        heldout_repos=[str(heldout_repo)],
        base_training_dir=args.base_training_dir,
        **size,
    )
    config = LoopConfig.model_validate(merge_overrides(args.config, config.model_dump()))
    started = time.monotonic()
    report = Loop(config, log=lambda line: print(line, flush=True)).run()
    total = time.monotonic() - started
    print("\nstage seconds:")
    for name, seconds in report["stage_seconds"].items():
        print(f"  {name:28s} {seconds:8.0f}")
    print(f"  {'total (this invocation)':28s} {total:8.0f}")
    print("\nheld-out metrics (mean ± 95% half-width over seeds):")
    evaluations = report["evaluations"]
    for name, evaluation in evaluations.items():
        print(f"  {name} ({evaluation['tasks']} tasks, {len(evaluation['per_seed'])} seeds)")
        for key, value in evaluation["summary"].items():
            print(f"    {key:20s} {value['mean']:.3f} ± {value['ci95']:.3f}")
        kinds = ", ".join(f"{kind} {n}" for kind, n in evaluation.get("commands", {}).items())
        print(f"    replies by kind      {kinds}")
    probes = report.get("probes") or {}
    if probes:
        print("\nheld-out next-step check (teacher-forced demonstrations; same kind / exact command):")
        for name, result in probes.items():
            summary = result["summary"]
            cells = ", ".join(
                f"{kind} {r['same_kind']:.2f}/{r['exact']:.2f} (n={r['n']})"
                for kind, r in summary["by_kind"].items()
            )
            overall = summary["overall"]
            print(f"  {name}: all {overall['same_kind']:.2f}/{overall['exact']:.2f}; {cells}")
    last = f"round-{config.rounds - 1}"
    for suffix in ["", *(f"/{variant}" for variant in config.eval_variants)]:
        base, tuned = evaluations["base" + suffix]["summary"], evaluations[last + suffix]["summary"]
        for key in ("resolve_rate", "format_error_rate"):
            b, t = base[key]["mean"], tuned[key]["mean"]
            name = f"{key}{suffix}"
            print(
                f"ratio {name} ({last} / base): {t / b:.2f}x"
                if b
                else f"ratio {name}: base is 0 ({last}: {t:.3f})"
            )
    print(json.dumps({"report": str(work / "loop" / "report.json")}))


if __name__ == "__main__":
    main()
