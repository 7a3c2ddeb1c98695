"""Greedy vs best-of-n vs MCTS at an equal budget of model calls, on held-out synthesized tasks.

Tasks are synthesized (`wren synth`, through the loop's own stage) from a repository the models were
not trained on; the served model is the bundled Gemma-3-270M GGUF (or --gguf) through llama.cpp.
Every method runs every task once per seed through `wren batch --search` machinery with the same
budget of model calls per task. Finished runs are ranked without the tests: by the value model when
--value is given, else by the "submitted" score (1 for a submission); each method's chosen patches
are then judged by `wren eval`'s judge. Printed per method: resolve rate with a 95% interval over
seeds, pass@k (any finished run of the search resolved: the ceiling of its samples, judged by the
instance's tests), model calls, wall time and tokens per task; greedy is the peer of the others.

    .venv/bin/python benchmarks/search_compare.py --work /tmp/wren-search --tasks 6 --seeds 0 1 2 --budget 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loop_tasks import add_loop_options, loop_on_tasks  # noqa: E402

METHODS = ("greedy", "best-of-n", "mcts")


def pass_at_k(out: Path, tasks: list[dict[str, Any]], eval_config: Any, workers: int) -> list[bool]:
    """Per task: did any submitted run in its tree resolve (each distinct patch judged once)?"""
    from wren.search.judges import InstanceJudge
    from wren.search.tree import ThoughtTree

    def one(inst: dict[str, Any]) -> bool:
        tree_dir = out / inst["instance_id"]
        if not (tree_dir / "tree.json").is_file():
            return False
        tree, _ = ThoughtTree.load(tree_dir)
        judge = InstanceJudge(inst, eval_config, tree_dir / "pass_at_k")
        patches = {
            n.submission for n in tree.terminals() if n.exit_status == "Submitted" and n.submission.strip()
        }
        return any(judge.report(p)["resolved"] for p in sorted(patches))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, tasks))


def run_method(
    method: str, seed: int, loop: Any, tasks: list[dict[str, Any]], api_base: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One method on every task with one seed: the batch, the judge's verdicts, pass@k and costs."""
    from wren.bench.batch import BatchRunner
    from wren.bench.evaluate import evaluate, judge_config, load_predictions
    from wren.bench.rundir import RunDir
    from wren.search.runner import SearchConfig, SearchRunner
    from wren.search.tree import ThoughtTree

    out = Path(args.work) / "runs" / method / f"seed-{seed}"
    config = loop.bench_config(api_base, seed)
    scoring = "value" if args.value else "submitted"
    search = SearchConfig(
        strategy=method, budget=args.budget, k=args.k, score_terminals=scoring, max_depth=args.step_limit
    )  # type: ignore[arg-type]
    eval_config = judge_config(config, workers=args.workers)
    started = time.monotonic()
    runner = SearchRunner(search, value_dir=args.value, eval_config=eval_config)
    BatchRunner(config, out, workers=args.workers, runner=runner).run(tasks)
    batch_seconds = time.monotonic() - started
    run = RunDir(out)
    preds = load_predictions(run.preds) if run.preds.is_file() else {}
    report = evaluate(tasks, preds, eval_config, run.report)
    passed = pass_at_k(out, tasks, eval_config, args.workers)
    calls, walls, tokens, submitted = [], [], [], 0
    for inst in tasks:
        tree_dir = out / inst["instance_id"]
        if not (tree_dir / "tree.json").is_file():
            calls.append(0)
            continue
        _, meta = ThoughtTree.load(tree_dir)
        calls.append(meta["model_calls"])
        walls.append(meta["wall_seconds"])
        tokens.append(sum((meta.get("tokens") or {}).values()))
        submitted += meta.get("exit_status") == "Submitted"
    n = len(tasks)
    return {
        "method": method,
        "seed": seed,
        "resolve_rate": report["resolved_instances"] / n,
        "pass_at_k": sum(passed) / n,
        "submit_rate": submitted / n,
        "calls_per_task": sum(calls) / n,
        "search_seconds_per_task": statistics.fmean(walls) if walls else 0.0,
        "tokens_per_task": sum(tokens) / n,
        "batch_seconds": round(batch_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_loop_options(
        parser,
        work="/tmp/wren-search",
        repo="more-itertools==10.5.0",
        tasks=6,
        step_limit=10,
        temperature=0.7,
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=6, help="model calls per task, every method")
    parser.add_argument("--k", type=int, default=2, help="samples per MCTS expansion")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--gguf", default="", help="served model ('' = the bundled Gemma-3-270M)")
    parser.add_argument("--value", default="", help="value model directory (ranks best-of-n, guides MCTS)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prepare-only", action="store_true", help="synthesize the tasks, then stop")
    args = parser.parse_args()

    from wren.learn.metrics import interval
    from wren.serve.embedded import default_model_path
    from wren.serve.served import served

    loop, repo, tasks, synth = loop_on_tasks(args, "heldout", n_ctx=args.n_ctx)
    work = loop.work
    if args.prepare_only:
        print(
            f"{len(tasks)} tasks in {work / 'tasks' / 'heldout.jsonl'} (synthesized in {synth['seconds']:.0f} s)"
        )
        return
    gguf = args.gguf or default_model_path()
    print(
        f"{len(tasks)} held-out tasks from {repo.name} (synthesized in {synth['seconds']:.0f} s), "
        f"seeds {args.seeds}, budget {args.budget} model calls per task, k={args.k}, "
        f"ranking by {'the value model' if args.value else 'submission (no tests)'}; model {Path(gguf).name}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with served(gguf, n_ctx=args.n_ctx, parallel=args.workers) as api_base:
        for seed in args.seeds:
            for method in args.methods:
                row = run_method(method, seed, loop, tasks, api_base, args)
                rows.append(row)
                print(json.dumps(row), flush=True)
    total = time.monotonic() - started
    (work / "search_compare.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))

    print(f"\nper method, mean ± 95% half-width over {len(args.seeds)} seeds ({len(tasks)} tasks each):")
    header = f"{'method':10s} {'resolve rate':>15s} {'pass@k':>15s} {'submit':>7s} {'calls/task':>10s} "
    print(header + f"{'search s/task':>13s} {'tokens/task':>11s}")
    summary: dict[str, dict[str, Any]] = {}
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        s = {k: interval([r[k] for r in mine]) for k in mine[0] if k not in ("method", "seed")}
        summary[method] = s
        print(
            f"{method:10s} {s['resolve_rate']['mean']:7.3f} ± {s['resolve_rate']['ci95']:5.3f} "
            f"{s['pass_at_k']['mean']:7.3f} ± {s['pass_at_k']['ci95']:5.3f} {s['submit_rate']['mean']:7.3f} "
            f"{s['calls_per_task']['mean']:10.1f} {s['search_seconds_per_task']['mean']:13.1f} "
            f"{s['tokens_per_task']['mean']:11.0f}"
        )
    if "greedy" in summary:
        base = summary["greedy"]["resolve_rate"]["mean"]
        for method in args.methods:
            if method != "greedy":
                mean = summary[method]["resolve_rate"]["mean"]
                print(
                    f"ratio resolve rate {method} / greedy: {mean / base:.2f}x"
                    if base
                    else f"ratio resolve rate {method} / greedy: greedy is 0 ({method}: {mean:.3f})"
                )
    print(f"total {total:.0f} s; results in {work / 'search_compare.json'}")


if __name__ == "__main__":
    main()
