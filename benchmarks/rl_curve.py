"""RL iterations on real runs: roll out the current policy, judge, `wren learn rl`, serve the next.

Per iteration: the current policy (iteration 0: the base GGUF) is served by llama.cpp and runs every
training task `--samples` times (`wren batch` + `wren eval`, through the loop's own stage, one seed
per sample, so a task's runs form a GRPO group); the judged episodes' returns (the reward registry)
are the iteration's mean reward; `wren learn rl` (GRPO, or PPO with --value) updates the LoRA,
which is merged and written as GGUF for the next iteration. After the last update the final policy
is rolled out once more, so N iterations give N + 1 points. With --heldout-repo, the base and the
last policy also run tasks synthesized from a repository never trained on (their resolve rates). Printed: mean reward and resolve rate
per iteration; `WORK/rl_curve.svg` plots the mean reward. Every stage resumes (Loop's Stages).

    .venv/bin/python benchmarks/rl_curve.py --work /tmp/wren-rl --model TRAINING_DIR \\
        --tasks 4 --samples 2 --iterations 2

TRAINING_DIR is the base model as `wren learn convert` writes it (the GGUF's tokenizer is copied
back from --gguf, the bundled Gemma-3-270M by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loop_tasks import add_loop_options, loop_on_tasks, synth_tasks  # noqa: E402
from benchmarks.synth_yield import prepare_repo  # noqa: E402


def svg(rewards: list[float]) -> str:
    """The mean reward per iteration as a line chart (the loop report's line, scaled to its range)."""
    from wren.learn.report import PLOT_HEIGHT, PLOT_WIDTH, line_points

    labels = "".join(
        f'<text x="{i * PLOT_WIDTH / max(len(rewards) - 1, 1):.0f}" y="{PLOT_HEIGHT + 14}" font-size="10">{i}</text>'
        for i in range(len(rewards))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH + 20}" height="{PLOT_HEIGHT + 40}" '
        f'viewBox="-10 -10 {PLOT_WIDTH + 20} {PLOT_HEIGHT + 40}"><rect x="0" y="0" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="white" '
        f'stroke="black"/><polyline points="{line_points(rewards)}" fill="none" stroke="blue"/>{labels}'
        f'<text x="4" y="12" font-size="11">mean reward per iteration, {min(rewards):.3f} to '
        f"{max(rewards):.3f}</text></svg>"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_loop_options(parser, work="/tmp/wren-rl", repo="toolz==1.2.0", tasks=4, step_limit=6, temperature=0.9)
    parser.add_argument("--model", required=True, help="training directory of the base model")
    parser.add_argument("--gguf", default="", help="the base model's GGUF ('' = the bundled Gemma-3-270M)")
    parser.add_argument("--heldout-repo", default="", help="PyPI sdist of held-out tasks ('' = none)")
    parser.add_argument("--heldout-tasks", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2, help="runs per task per iteration (a group)")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--method", default="grpo", choices=("grpo", "ppo"))
    parser.add_argument("--value", default="", help="value model directory (ppo)")
    parser.add_argument("--epochs", type=int, default=2, help="updates per collected batch")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args()

    from wren.bench.rundir import RunDir
    from wren.config.loader import validate
    from wren.learn.data.episodes import load_episodes
    from wren.learn.data.rewards import RewardConfig
    from wren.learn.served_model import ServedModel
    from wren.learn.train.finetune import merge_adapter
    from wren.learn.train.rl.iteration import RLIterationConfig, rl_iteration, rl_records
    from wren.serve.embedded import default_model_path
    from wren.serve.gguf_export import export_gguf

    loop, _, tasks, _ = loop_on_tasks(args, "train")
    work = loop.work
    heldout: list[dict[str, Any]] = []
    if args.heldout_repo:
        held_repo = prepare_repo(args.heldout_repo, work / "src")
        heldout, _ = synth_tasks(loop, "heldout", held_repo, args.heldout_tasks)
    base_gguf = args.gguf or default_model_path()
    rewards_config = RewardConfig()
    rl = validate(
        RLIterationConfig,
        {
            "model": args.model, "output": str(work / "adapter"), "method": args.method, "value": args.value,
            "max_length": args.max_length, "rl": {"epochs": args.epochs, "lr": args.lr},
        },
        where="rl_curve",
    )  # fmt: skip
    gguf = base_gguf
    curve: list[dict[str, Any]] = []
    for i in range(args.iterations + 1):
        here = work / f"iter-{i}"
        episodes = []
        for s in range(args.samples):
            out = here / f"sample-{s}"
            loop.stages.run(
                f"rollouts-{i}-{s}",
                lambda out=out, seed=1000 * i + s, gguf=gguf: loop.run_and_judge(
                    ServedModel(gguf), tasks, out, seed
                ),
            )
            episodes += load_episodes(out, report=RunDir(out).report, dataset=work / "tasks" / "train.jsonl")
        records = rl_records(episodes, rewards_config)
        point = {
            "iteration": i,
            "policy": gguf,
            "episodes": len(records),
            "mean_reward": sum(r["reward"] for r in records) / len(records) if records else 0.0,
            "resolve_rate": sum(e.resolved for e in episodes) / len(episodes) if episodes else 0.0,
        }
        if heldout and i in (0, args.iterations):  # the base policy and the last one, never trained on
            out = here / "heldout"
            judged = loop.stages.run(
                f"heldout-{i}",
                lambda out=out, gguf=gguf: loop.run_and_judge(ServedModel(gguf), heldout, out, 7),
            )
            point["heldout_resolve_rate"] = judged["resolved"] / len(heldout)
        curve.append(point)
        print(json.dumps(point), flush=True)
        if i == args.iterations:
            break
        log = loop.stages.run(f"rl-{i}", lambda records=records: rl_iteration(records, rl))
        last = log["steps"][-1]
        print(
            f"iteration {i}: {args.method} on {log['episodes']} episodes, last step ratio deviation "
            f"{last['ratio_max_deviation']:.3f}, clipped {last['clip_fraction']:.1%}, KL {last['kl']:.4f}",
            flush=True,
        )

        def policy(here: Path = here) -> dict[str, Any]:
            merged = merge_adapter(args.model, work / "adapter", here / "model")
            return {"gguf": str(export_gguf(merged, here / "policy.gguf", tokenizer_gguf=base_gguf))}

        gguf = loop.stages.run(f"policy-{i}", policy)["gguf"]
    (work / "rl_curve.json").write_text(json.dumps(curve, indent=1))
    (work / "rl_curve.svg").write_text(svg([p["mean_reward"] for p in curve]))
    print("\niteration  episodes  mean reward  resolve rate")
    for p in curve:
        print(f"{p['iteration']:9d}  {p['episodes']:8d}  {p['mean_reward']:11.3f}  {p['resolve_rate']:12.3f}")
    if heldout:
        first, last = curve[0]["heldout_resolve_rate"], curve[-1]["heldout_resolve_rate"]
        print(f"held-out resolve rate ({len(heldout)} tasks): base {first:.3f}, last policy {last:.3f}")
    print(f"plot: {work / 'rl_curve.svg'}")


if __name__ == "__main__":
    main()
