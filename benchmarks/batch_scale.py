"""Batch-runner throughput and memory: N scripted instances of S steps each with W workers,
for `wren batch`'s runner and, side by side, mini-swe-agent 2.4.6's SWE-bench batch runner
(its process_instance with its deterministic model and local environment), each in its own
process so that peak memory is the runner's own.

    python benchmarks/batch_scale.py [-n 500] [--steps 20] [--workers 32]

Both do the same work per instance: a git clone of the fixture repository, S shell commands,
a submission, a trajectory file and a preds.json update.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _step(i: int) -> str:
    return f"THOUGHT: step {i}\n\n```bash\necho step {i} && ls > /dev/null\n```"


def run_wren(work: Path, n: int, steps: int, workers: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.peers.fixture_repo import build_calc_repo, copies, write_jsonl
    from wren.bench.batch import BatchRunner
    from wren.bench.config import BenchWrenConfig
    from wren.bench.datasets import load_instances
    from wren.bench.rundir import RunDir
    from wren.config.assemble import assemble_config
    from wren.config.loader import parse_override  # noqa: F401  (config import cost counted)

    inst = build_calc_repo(work / "repos")
    instances = load_instances(write_jsonl(work / "ds.jsonl", copies(inst, n)))
    outputs = [_step(i) for i in range(steps - 1)]
    outputs.append("THOUGHT: done\n\n```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff\n```")
    config = assemble_config([], schema=BenchWrenConfig)
    config.model = config.model.model_copy(
        update={"model_class": "scripted", "name": "scripted", "outputs": outputs}
    )
    config.bench.workspace.repos = str(work / "repos")
    config.bench.workspace.root = str(work / "checkouts")
    config.environment = {"environment_class": "local"}
    start = time.perf_counter()
    summary = BatchRunner(config, work / "out", workers=workers).run(instances)
    seconds = time.perf_counter() - start
    preds = RunDir(work / "out").read_preds()
    return {"seconds": seconds, "done": len(preds), "statuses": summary["exit_statuses"]}


def run_mini(work: Path, n: int, steps: int, workers: int) -> dict:
    import concurrent.futures

    sys.path.insert(0, str(ROOT))
    from minisweagent.config import get_config_from_spec
    from minisweagent.models.test_models import make_output
    from minisweagent.run.benchmarks import swebench as mini
    from minisweagent.run.benchmarks.utils.batch_progress import RunBatchProgressManager
    from minisweagent.utils.serialize import recursive_merge

    from tests.peers.fixture_repo import build_calc_repo, copies

    inst = build_calc_repo(work / "repos")
    instances = copies(inst, n)
    outputs = [
        make_output(f"step {i}", [{"command": f"echo step {i} && ls > /dev/null"}]) for i in range(steps - 1)
    ]
    outputs.append(
        make_output("done", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"}])
    )
    repo = work / "repos" / "wren-fixtures__calc"
    config = recursive_merge(
        get_config_from_spec(mini.DEFAULT_CONFIG_FILE),
        {
            "model": {"model_class": "deterministic", "outputs": outputs, "cost_per_call": 0.0},
            "environment": {"environment_class": "local", "cwd": str(work / "checkouts")},
            # The same per-instance git work as Wren's checkout.
            "run": {"env_startup_command": f"git clone -q {repo} {work}/checkouts/{{{{ instance_id }}}}"},
        },
    )
    (work / "checkouts").mkdir(parents=True, exist_ok=True)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    progress = RunBatchProgressManager(len(instances), out / "exit_statuses.yaml")
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda i: mini.process_instance(i, out, config, progress), instances))
    seconds = time.perf_counter() - start
    preds = json.loads((out / "preds.json").read_text())  # mini-swe-agent's run directory
    return {"seconds": seconds, "done": len(preds), "statuses": {}}


def child(runner: str, n: int, steps: int, workers: int) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix=f"wren-scale-{runner}-") as tmp:
        result = (run_wren if runner == "wren" else run_mini)(Path(tmp), n, steps, workers)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=500, help="instances")
    parser.add_argument("--steps", type=int, default=20, help="agent steps per instance (the last submits)")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--runners", default="wren,mini", help="comma-separated: wren, mini")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.steps, args.workers)
        return
    results = {}
    for runner in args.runners.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", runner, "-n", str(args.n), "--steps", str(args.steps),
             "--workers", str(args.workers)],
            capture_output=True, text=True,
        )  # fmt: skip
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"{runner} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            continue
        results[runner] = json.loads(lines[-1][len("RESULT ") :])
    print(f"\n{args.n} scripted instances x {args.steps} steps, {args.workers} workers, local environment")
    print(f"{'runner':28} {'done':>5} {'seconds':>9} {'inst/min':>9} {'peak RSS MiB':>13}")
    names = {"wren": "wren batch (BatchRunner)", "mini": "mini-swe-agent 2.4.6 swebench"}
    for runner, r in results.items():
        per_min = 60 * r["done"] / r["seconds"]
        r["per_min"] = per_min
        print(
            f"{names[runner]:28} {r['done']:5d} {r['seconds']:9.1f} {per_min:9.1f} {r['peak_rss_mib']:13.1f}"
        )
    if "wren" in results and "mini" in results:
        w, m = results["wren"], results["mini"]
        print(
            f"\nwren / mini-swe-agent: throughput x{w['per_min'] / m['per_min']:.2f}, "
            f"peak memory x{w['peak_rss_mib'] / m['peak_rss_mib']:.2f}"
        )


if __name__ == "__main__":
    main()
