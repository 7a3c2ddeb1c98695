"""The training records the ladder recipe makes: tokens per record and the edit's share, per rung.

Runs the recipe's first stages (sdists, synthesis, judged demonstrations) on a few of its
repositories with few tasks each, then exports the demonstrations retold at every rung with the
recipe's export settings, counting with the bundled model's tokenizer, and prints per rung: records,
tokens per record (mean, max), trained tokens per record and the share of them in the edit reply.
Beside it, the same episodes as whole-run windows (the loop's default export).

    flock /tmp/wren-cpu.lock python benchmarks/ladder_records.py --work /tmp/ladder-records \
        --repos toolz,six,more-itertools --tasks 6
"""

from __future__ import annotations

import argparse
import statistics

from wren.config.loader import validate
from wren.learn.data.command_kinds import reply_kind
from wren.learn.data.episodes import load_episodes
from wren.learn.data.export import ExportConfig, sft_records
from wren.learn.data.rungs import at_levels
from wren.learn.loop import Loop, LoopConfig
from wren.learn.loop_config import config_file
from wren.serve.convert import token_counter
from wren.serve.embedded import default_model_path


def figures(records: list[dict], count) -> dict:
    tokens, trained, edit = [], [], []
    for r in records:
        tokens.append(sum(count(m["content"]) + 4 for m in r["messages"]))
        replies = [m for m in r["messages"] if m["role"] == "assistant" and m.get("train")]
        trained.append(sum(count(m["content"]) for m in replies))
        edit.append(sum(count(m["content"]) for m in replies if reply_kind(m) == "edit"))
    return {
        "records": len(records),
        "mean": statistics.fmean(tokens),
        "max": max(tokens),
        "trained": statistics.fmean(trained),
        "edit_share": sum(edit) / max(sum(trained), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument(
        "--repos", default="toolz,six,more-itertools", help="Names from the list (one held-out)."
    )
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument(
        "--steps-before", type=int, nargs="*", default=[], help="Also export windows with these steps_before."
    )
    args = parser.parse_args()
    from wren.cli.options import config_data

    data = config_data([config_file("ladder")]) | {
        "work_dir": args.work,
        "repo_names": args.repos.split(","),
        "train_tasks": args.tasks,
    }
    loop = Loop(validate(LoopConfig, data, where="ladder"), log=print)
    c = loop.config
    loop.stages.run("sources", loop._sources)
    train, _, test_cmds = loop.repositories()
    loop.stages.run(
        "synth-train",
        lambda: loop._synth(train, loop.work / "tasks" / "train.jsonl", c.train_tasks, test_cmds),
    )
    loop.stages.run("demos", lambda: loop._demos(loop.tasks("train"), loop.work / "demos"))
    demos = [
        e
        for e in load_episodes(
            loop.work / "demos",
            dataset=loop.work / "tasks" / "train.jsonl",
            report=loop.work / "demos" / "report.json",
        )
        if e.resolved
    ]
    count = token_counter(default_model_path())
    retold, missed = at_levels(demos, c.curriculum.demo_levels)
    print(f"{len(demos)} judged demonstrations, {len(retold)} retold records, {missed} not retold")
    rows = {}
    for level in c.curriculum.demo_levels:
        at = [e for e in retold if e.instance["hint_level"] == level]
        rows[f"L{level} edit window"] = figures(list(sft_records(at, c.export, count)), count)
    for k in args.steps_before:
        export = c.export.model_copy(
            update={"edit_window": c.export.edit_window.model_copy(update={"steps_before": k})}
        )
        for level in c.curriculum.demo_levels:
            at = [e for e in retold if e.instance["hint_level"] == level]
            rows[f"L{level} steps_before={k}"] = figures(list(sft_records(at, export, count)), count)
    rows["L1 whole run (max 3072)"] = figures(
        list(sft_records(demos, ExportConfig(max_tokens=3072), count)), count
    )
    for name, f in rows.items():
        print(
            f"{name:24s} records {f['records']:4d}  tokens mean {f['mean']:6.0f} max {f['max']:5d}  "
            f"trained {f['trained']:5.0f}  edit share {f['edit_share']:.2f}"
        )


if __name__ == "__main__":
    main()
