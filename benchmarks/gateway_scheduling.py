"""Steps per minute and step latency of 128 agent programs: `program` vs `round-robin` vs `least-loaded`.

Two simulated inference servers hold together half of what the programs' contexts need on average
(2x KV oversubscription); the same seeded programs run through each policy in turn. A second round
gives the servers twice what is needed (0.5x, no pressure). `program-unbounded` is the program
policy without its tail bound (`max_pause_seconds` infinite), to show what the bound costs and buys.

By default everything runs in simulated time (`wren.gateway.fleet`, a discrete-event simulation of
the workload, the gateway's policy and accounting, and the engines): the figures do not depend on
how busy the machine is and repeat exactly. `--live` runs real processes instead (`wren gateway sim
serve`, `wren gateway`, the workload generator) over loopback sockets with simulated time
`--time-scale` times faster than the wall clock; on a loaded machine the simulators lag (the `lag`
column) and the figures drift.

    python benchmarks/gateway_scheduling.py [--duration 300] [--programs 128] [--live --time-scale 5]

Targets (issue 12): at 2x, program >= 2.5x round-robin's steps/min with p99 step latency <= 1.2x
round-robin's; at 0.5x program is not slower than round-robin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port, wait_http  # noqa: E402

from wren.gateway.config import GatewayConfig  # noqa: E402
from wren.gateway.scheduler import POLICIES as _POLICIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def mean_context(args: argparse.Namespace) -> float:
    """Average context (tokens) of a live program over its steps, from the seeded program specs."""
    from wren.gateway.workload import WorkloadConfig, program_spec

    cfg = WorkloadConfig(
        url="http://x/v1",
        seed=args.seed,
        chars_per_token=args.chars_per_token,
        steps=(args.min_steps, args.max_steps),
    )
    total = count = 0
    for i in range(args.programs * 4):
        spec = program_spec(cfg, i)
        ctx = cfg.system_prompt_tokens + spec.task_tokens + 40
        for step in range(spec.steps):
            ctx += spec.completions[step]
            total += ctx
            count += 1
            ctx += spec.observations[step] + 40
    return total / count


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def scrape(url: str) -> dict[str, float]:
    from wren.gateway.backends import parse_prometheus

    with urllib.request.urlopen(url, timeout=5) as resp:
        samples = parse_prometheus(resp.read().decode())
    return {name: sum(v for _, v in vals) for name, vals in samples.items()}


class StateSampler(threading.Thread):
    """Samples the gateway's programs-by-state gauge once a second."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[dict[str, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        from wren.gateway.backends import parse_prometheus

        while not self._stop_event.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    samples = parse_prometheus(resp.read().decode())
            except OSError:
                continue
            self.samples.append({lab["state"]: v for lab, v in samples.get("wren_gateway_programs", [])})

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def means(self) -> dict[str, float]:
        states = {k for s in self.samples for k in s}
        return {
            k: round(sum(s.get(k, 0) for s in self.samples) / max(1, len(self.samples)), 1)
            for k in sorted(states)
        }


UNBOUNDED = "program-unbounded"
THUNDERAGENT = "thunderagent-tr"
DEFAULT = GatewayConfig.model_fields["policy"].default
POLICIES = [
    DEFAULT, *(p for p in _POLICIES.names() if p != DEFAULT), UNBOUNDED,
]  # fmt: skip


def gateway_knobs(policy: str) -> tuple[str, dict[str, float]]:
    """The gateway policy a benchmark row runs, and its settings beyond the defaults."""
    if policy == UNBOUNDED:
        return "program", {"max_pause_seconds": float("inf")}
    return policy, {}


def simulated_case(policy: str, capacity: int, args: argparse.Namespace) -> dict:
    from wren.gateway.config import GatewayConfig
    from wren.gateway.engine import SimConfig
    from wren.gateway.fleet import simulate_fleet
    from wren.gateway.workload import WorkloadConfig

    name, knobs = gateway_knobs(policy)
    t0 = time.monotonic()
    result = simulate_fleet(
        WorkloadConfig(
            url="http://fleet/v1",
            programs=args.total_programs,
            concurrency=args.programs,
            duration_seconds=args.duration or None,
            seed=args.seed,
            chars_per_token=args.chars_per_token,
            steps=(args.min_steps, args.max_steps),
            steady_start=True,
        ),
        SimConfig(capacity_tokens=capacity, chars_per_token=args.chars_per_token, seed=args.seed),
        GatewayConfig(backends=[f"http://sim-{k}" for k in range(args.backends)], policy=name, **knobs),
    )
    return {
        **result.summary(),
        "policy": policy,
        "capacity_per_backend": capacity,
        "wall_seconds": round(time.monotonic() - t0, 1),
        "sim_max_lag_seconds": 0.0,
    }


def start_gateway(
    policy: str, sims: list[str], port: int, args: argparse.Namespace, log: Path
) -> subprocess.Popen:
    """`wren gateway` with the row's policy, its wall-clock knobs scaled with simulated time."""
    scale = args.time_scale
    name, knobs = gateway_knobs(policy)
    defaults = GatewayConfig(backends=["http://x"])
    timing = {
        k: getattr(defaults, k) / scale
        for k in ("affinity_wait_seconds", "ageing_seconds", "max_pause_seconds", "min_run_seconds",
                  "max_queue_seconds", "tool_ttl_initial_seconds", "tool_ttl_max_seconds")
    }  # fmt: skip
    timing["scrape_interval_seconds"] = max(0.2, defaults.scrape_interval_seconds / scale)
    timing.update({k: (1e9 if v == float("inf") else v) for k, v in knobs.items()})
    return start(
        [
            PY, "-m", "wren.cli.main", "gateway", "--backends", ",".join(sims), "--port", str(port),
            "--policy", name, "--log-level", "WARNING",
            *(x for k, v in timing.items() for x in ("-c", f"{k}={v}")),
        ],
        log,
    )  # fmt: skip


def start_thunderagent(sims: list[str], port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    """ThunderAgent's own router, unmodified, in `tr` mode (its capacity scheduling) from a checkout at
    `--thunderagent` run by `--thunderagent-python`; its intervals scaled with simulated time as ours."""
    if not args.thunderagent:
        raise SystemExit("the thunderagent-tr row needs --thunderagent DIR (a ThunderAgent checkout)")
    interval = max(0.2, 5.0 / args.time_scale)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=args.thunderagent)
    return subprocess.Popen(
        [
            args.thunderagent_python, "-m", "ThunderAgent", "--host", "127.0.0.1", "--port", str(port),
            "--backends", ",".join(sims), "--router", "tr", "--backend-type", "vllm", "--metrics",
            "--metrics-interval", str(interval), "--scheduler-interval", str(interval), "--log-level", "warning",
        ],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=args.thunderagent,
    )  # fmt: skip


def run_case(policy: str, capacity: int, args: argparse.Namespace, logs: Path) -> dict:
    procs = []
    try:
        sims = []
        for k in range(args.backends):
            port = free_port()
            procs.append(
                start(
                    [
                        PY, "-m", "wren.cli.main", "gateway", "sim", "serve", "--port", str(port),
                        "--capacity", str(capacity), "--chars-per-token", str(args.chars_per_token),
                        "--time-scale", str(args.time_scale), "--seed", str(args.seed),
                    ],
                    logs / f"sim-{policy}-{capacity}-{k}.log",
                )
            )  # fmt: skip
            sims.append(f"http://127.0.0.1:{port}")
        for s in sims:
            wait_http(s + "/health")
        gw_port = free_port()
        if policy == THUNDERAGENT:
            procs.append(start_thunderagent(sims, gw_port, args, logs / f"thunderagent-{capacity}.log"))
        else:
            procs.append(
                start_gateway(policy, sims, gw_port, args, logs / f"gateway-{policy}-{capacity}.log")
            )
        wait_http(f"http://127.0.0.1:{gw_port}/health")
        sampler = StateSampler(f"http://127.0.0.1:{gw_port}/metrics")
        sampler.start()
        t0 = time.monotonic()
        out = subprocess.run(
            [
                PY, "-m", "wren.cli.main", "gateway", "sim", "workload", "--url", f"http://127.0.0.1:{gw_port}/v1",
                "--programs", str(args.total_programs), "--concurrency", str(args.programs),
                *(["--duration", str(args.duration)] if args.duration else []),
                "--seed", str(args.seed), "--time-scale", str(args.time_scale),
                "--chars-per-token", str(args.chars_per_token), "--steps", f"{args.min_steps}:{args.max_steps}", "-c", "steady_start=true",
            ],
            capture_output=True, text=True, cwd=ROOT, timeout=(args.duration or 7200) / args.time_scale + 300,
        )  # fmt: skip
        wall = time.monotonic() - t0
        sampler.stop()
        if out.returncode != 0:
            raise RuntimeError(f"workload failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout)
        sim_stats = [scrape(s + "/metrics") for s in sims]
        gw = scrape(f"http://127.0.0.1:{gw_port}/metrics") if policy != THUNDERAGENT else {}
        queries = sum(m.get("vllm:prefix_cache_queries_total", 0) for m in sim_stats)
        hits = sum(m.get("vllm:prefix_cache_hits_total", 0) for m in sim_stats)
        result.update(
            policy=policy,
            capacity_per_backend=capacity,
            wall_seconds=round(wall, 1),
            preemptions=int(sum(m.get("vllm:num_preemptions_total", 0) for m in sim_stats)),
            prefix_hit_rate=round(hits / queries, 3) if queries else 0.0,
            sim_max_lag_seconds=round(max(m.get("wren_sim_max_lag_seconds", 0) for m in sim_stats), 2),
            pauses=int(gw.get("wren_gateway_pauses_total", 0)),
            prefill_share=round(
                sum(m.get("wren_sim_prefill_seconds_total", 0) for m in sim_stats)
                / max(1e-9, sum(m.get("wren_sim_busy_seconds_total", 0) for m in sim_stats)),
                2,
            ),
            mean_programs=sampler.means(),
            resumes=int(gw.get("wren_gateway_resumes_total", 0)),
        )
        return result
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--programs", type=int, default=128, help="programs running at once")
    parser.add_argument("--total-programs", type=int, default=256, help="programs the workers run in all")
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument(
        "--duration", type=float, default=0.0, help="simulated seconds per case (0: until every program ends)"
    )
    parser.add_argument("--live", action="store_true", help="real processes over sockets, not simulated time")
    parser.add_argument(
        "--time-scale", type=float, default=5.0, help="with --live: simulated seconds per wall second"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chars-per-token", type=int, default=4, help="simulated tokenizer density")
    parser.add_argument("--min-steps", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--pressures", default="2.0,0.5", help="KV oversubscription factors to run")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object of the key figures, nothing else"
    )
    parser.add_argument(
        "--thunderagent", help="with --live: a ThunderAgent checkout, for the thunderagent-tr row"
    )
    parser.add_argument(
        "--thunderagent-python",
        default=PY,
        help="the Python that runs ThunderAgent (fastapi, uvicorn, httpx)",
    )
    parser.add_argument("--logs", default="/tmp/wren-gateway-bench")
    args = parser.parse_args()
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    say = (lambda *a, **k: None) if args.json else print

    demand = mean_context(args) * args.programs
    say(
        f"{args.programs} programs, mean live context {demand / args.programs:.0f} tokens, demand {demand:.0f} tokens"
    )
    mode = f"live processes, time x{args.time_scale:g}" if args.live else "simulated time"
    rows = []
    figures: dict = {}
    for pressure in [float(x) for x in args.pressures.split(",")]:
        capacity = int(demand / pressure / args.backends)
        say(f"\n== {pressure:g}x KV oversubscription: {args.backends} backends x {capacity} tokens ({mode})")
        say(
            f"  {'policy':18s} {'steps/min':>9s} {'JCT mean':>9s} {'JCT p99':>8s} {'p50 s':>7s} {'p99 s':>7s}  details"
        )
        by_policy = {}
        for policy in args.policies.split(","):
            r = (
                run_case(policy, capacity, args, logs)
                if args.live
                else simulated_case(policy, capacity, args)
            )
            by_policy[policy] = r
            rows.append({"pressure": pressure, **r})
            extra = f" lag={r['sim_max_lag_seconds']}s programs={r.get('mean_programs')}" if args.live else ""
            say(
                f"  {policy:18s} {r['steps_per_minute']:9.1f} {r['completion_mean']:9.1f} {r['completion_p99']:8.1f} "
                f"{r['step_latency_p50']:7.1f} {r['step_latency_p99']:7.1f}  "
                f"steps={r['steps']} done={r['programs_finished']} errors={r['errors']} hit={r['prefix_hit_rate']:.2f} "
                f"preempt={r['preemptions']} pauses={r['pauses']} resumes={r['resumes']} prefill={r['prefill_share']:.0%} "
                f"wall={r['wall_seconds']}s" + extra,
                flush=True,
            )
        figures[f"{pressure:g}x"] = {
            p: {
                "steps_per_min": r["steps_per_minute"],
                "completion_mean_s": r["completion_mean"],
                "completion_p99_s": r["completion_p99"],
                "step_p99_s": r["step_latency_p99"],
            }
            for p, r in by_policy.items()
        }
        base = by_policy.get(DEFAULT)
        for other, peer in by_policy.items():
            if (
                other == DEFAULT
                or base is None
                or not peer["steps_per_minute"]
                or not peer["step_latency_p99"]
            ):
                continue
            say(
                f"  {DEFAULT} / {other}: steps/min {base['steps_per_minute'] / peer['steps_per_minute']:.2f}x, "
                f"JCT mean {base['completion_mean'] / max(1e-9, peer['completion_mean']):.2f}x, "
                f"p99 step {base['step_latency_p99'] / peer['step_latency_p99']:.2f}x"
            )
    out = logs / "results.json"
    out.write_text(json.dumps(rows, indent=2))
    if args.json:
        print(json.dumps({**figures, "default_policy": DEFAULT}))
    else:
        print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
