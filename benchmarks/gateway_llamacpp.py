"""Program completion time of real agent runs through the gateway onto two real llama.cpp servers.

Two embedded servers (llama.cpp from xllamacpp serving the catalog's default entry, the bundled
Gemma-3-270M with its adapters, as `wren batch` with no model serves it; `wren.serve.embedded`)
with a small KV cache per slot, so that the programs' contexts do not all fit; `wren batch` runs
agents on tasks synthesized from the fixture repository (`wren synth`), `--workers` at a time,
through `wren gateway` with each policy in turn, `--reps` times, alternating the policies. Reported
per run: steps per minute (model calls of all runs / the batch's wall time) and mean and p99 program
completion time (an agent run's first model request to its last reply, from its trajectory), and,
over the repetitions, each policy's mean and spread and the ratio to round-robin.

    python benchmarks/gateway_llamacpp.py [--tasks 8] [--workers 8] [--steps 6] [--reps 3]

Everything shares this machine's cores; run it under the CPU lock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def make_tasks(work: Path, n: int) -> tuple[Path, Path]:
    """Tasks synthesized from the fixture repository, repeated under distinct ids up to `n`."""
    sys.path.insert(0, str(ROOT))
    from tests.peers.fixture_repo import build_calc_repo

    build_calc_repo(work / "src")
    src = next((work / "src").iterdir())
    synth = work / "synth.jsonl"
    subprocess.run(
        [PY, "-m", "wren.cli.main", "synth", str(src), "-o", str(synth), "--max", str(n)],
        check=True, cwd=ROOT, capture_output=True, timeout=600,
    )  # fmt: skip
    found = [json.loads(line) for line in synth.read_text().splitlines() if line.strip()]
    if not found:
        raise SystemExit("wren synth made no tasks")
    tasks = [
        {**found[k % len(found)], "instance_id": f"{found[k % len(found)]['instance_id']}-{k}"}
        for k in range(n)
    ]
    out = work / "tasks.jsonl"
    out.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return out, work / "repos"  # where synth puts the task repository, beside its output


def completion_times(run_dir: Path) -> tuple[list[float], int]:
    """Per agent run: its start (its first record, written just before its first model request) to its
    last record (seconds); and the number of model calls (assistant messages with a latency)."""
    times, steps = [], 0
    for path in run_dir.rglob("trajectory.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        stamps = [float(r["timestamp"]) for r in rows if r.get("timestamp")]
        calls = sum(
            1
            for r in rows
            for m in r.get("messages") or []
            if m.get("role") == "assistant" and "latency" in (m.get("extra") or {})
        )
        if not stamps or not calls:
            continue
        times.append(max(stamps) - min(stamps))
        steps += calls
    return times, steps


def metric_sum(root: str, names: tuple[str, ...]) -> dict[str, float]:
    """The sums of the named counters on the Prometheus page at `root`/metrics, label sets added."""
    import httpx

    from wren.gateway.backends import parse_prometheus

    samples = parse_prometheus(httpx.get(root.rstrip("/") + "/metrics", timeout=10).text)
    return {name: sum(value for _, value in samples.get(name, [])) for name in names}


def server_counters(backends: list[str]) -> dict[str, float]:
    """Prompt tokens the llama.cpp servers computed and took from their prompt cache, all servers."""
    names = ("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total")
    per_server = [metric_sum(b, names) for b in backends]
    return {name: sum(counts[name] for counts in per_server) for name in names}


def run_once(
    policy: str, backends: list[str], tasks: Path, repos: Path, out: Path, args: argparse.Namespace
) -> dict:
    port = free_port()
    gw = subprocess.Popen(
        [PY, "-m", "wren.cli.main", "gateway", "--backends", ",".join(backends), "--port", str(port),
         "--policy", policy, "--log-level", "WARNING"],
        cwd=ROOT, stdout=(out.parent / f"gateway-{out.name}.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        before = server_counters(backends)
        t0 = time.monotonic()
        done = subprocess.run(
            [PY, "-m", "wren.cli.main", "batch", "-d", str(tasks), "-o", str(out), "--repos", str(repos),
             "--env", "local", "--workers", str(args.workers), "--gateway", f"http://127.0.0.1:{port}/v1",
             "-c", f"agent.step_limit={args.steps}"],
            cwd=ROOT, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        wall = time.monotonic() - t0
        after = server_counters(backends)
        pauses = metric_sum(f"http://127.0.0.1:{port}", ("wren_gateway_pauses_total",))
    finally:
        gw.terminate()
        gw.wait(30)
    times, steps = completion_times(out)
    if not times:
        raise SystemExit(f"no trajectories from the {policy} run: {done.stderr[-2000:]}")
    times.sort()
    return {
        "policy": policy,
        "runs": len(times),
        "steps": steps,
        "wall_s": round(wall, 1),
        "steps_per_min": round(steps / (wall / 60), 2),
        "completion_mean_s": round(statistics.mean(times), 1),
        "completion_p99_s": round(times[min(len(times) - 1, int(0.99 * len(times)))], 1),
        "batch_rc": done.returncode,
        "prompt_computed": int(
            after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"]
        ),
        "prompt_cached": int(
            after["llamacpp:prompt_tokens_cached_total"] - before["llamacpp:prompt_tokens_cached_total"]
        ),
        "pauses": int(sum(pauses.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=8, help="agent runs per batch")
    parser.add_argument("--workers", type=int, default=8, help="agent runs at once")
    parser.add_argument("--steps", type=int, default=6, help="step limit of each agent run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4, help="parallel sequences per server")
    parser.add_argument(
        "--n-ctx", type=int, default=12288, help="KV cache tokens per server (shared by its slots)"
    )
    parser.add_argument("--policies", default="round-robin,program")
    parser.add_argument("--work", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="wren-gw-llamacpp-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["WREN_HOME"] = str(work / "home")
    from wren.models.catalog import choose_slm, default_model
    from wren.serve.embedded import ensure_server, stop_server

    lora = choose_slm(default_model()).lora or []

    tasks, repos = make_tasks(work, args.tasks)
    args.embedded_ports = [free_port(), free_port()]
    backends = []
    try:
        for p in args.embedded_ports:
            backends.append(
                ensure_server(p, slots=args.slots, n_ctx=args.n_ctx, lora=lora).removesuffix("/v1")
            )
        print(
            f"{len(backends)} llama.cpp servers x {args.n_ctx} KV tokens ({args.slots} slots of "
            f"{args.n_ctx // args.slots}); {args.tasks} agent runs, {args.workers} at once, step limit {args.steps}",
            flush=True,
        )
        print(
            f"  {'rep':>3s} {'policy':12s} {'steps/min':>9s} {'JCT mean':>9s} {'JCT p99':>8s} {'wall s':>7s}  runs steps"
            "  computed  cached pauses"
        )
        rows = []
        for rep in range(args.reps):
            order = args.policies.split(",")
            if rep % 2:
                order.reverse()  # alternate which policy runs first (warm caches, machine drift)
            for policy in order:
                r = run_once(policy, backends, tasks, repos, work / f"run-{rep}-{policy}", args)
                r["rep"] = rep
                rows.append(r)
                print(
                    f"  {rep:3d} {policy:12s} {r['steps_per_min']:9.1f} {r['completion_mean_s']:9.1f} "
                    f"{r['completion_p99_s']:8.1f} {r['wall_s']:7.1f}  {r['runs']:4d} {r['steps']:5d}"
                    f"  {r['prompt_computed']:8d} {r['prompt_cached']:7d} {r['pauses']:6d}",
                    flush=True,
                )
    finally:
        for p in args.embedded_ports:
            stop_server(p)
    summary = {}
    for policy in args.policies.split(","):
        mine = [r for r in rows if r["policy"] == policy]
        summary[policy] = {
            k: {"mean": round(statistics.mean(r[k] for r in mine), 2), "min": min(r[k] for r in mine),
                "max": max(r[k] for r in mine)}
            for k in ("steps_per_min", "completion_mean_s")
        }  # fmt: skip
        print(
            f"{policy:12s} steps/min {summary[policy]['steps_per_min']}, "
            f"mean completion {summary[policy]['completion_mean_s']}"
        )
    base = summary.get("round-robin")
    for policy, s in summary.items():
        if base and policy != "round-robin":
            print(
                f"{policy} / round-robin: steps/min {s['steps_per_min']['mean'] / base['steps_per_min']['mean']:.2f}x, "
                f"mean completion {s['completion_mean_s']['mean'] / base['completion_mean_s']['mean']:.2f}x "
                f"(ranges: {s['completion_mean_s']['min']}-{s['completion_mean_s']['max']} s vs "
                f"{base['completion_mean_s']['min']}-{base['completion_mean_s']['max']} s)"
            )
    print(json.dumps({"rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
