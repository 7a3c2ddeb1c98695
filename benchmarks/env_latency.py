"""Seconds per command in each environment, against mini-swe-agent 2.4.6's DockerEnvironment on
the same image, measured side by side in one run.

    python benchmarks/env_latency.py [--image wren-test-python:bookworm] [-n 50]

Every environment runs the same commands; the persistent modes are also checked for isolation
(a `cd` or `export` in one command must not be seen by the next).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

COMMANDS = ["echo hi", "cd /tmp && pwd", "export X=1; echo $X", "ls / | head -3", "true"]


def measure(run: Callable[[str], dict], n: int) -> list[float]:
    for command in COMMANDS[:3]:  # warm-up (first exec, shell start)
        run(command)
    times = []
    for i in range(n):
        command = COMMANDS[i % len(COMMANDS)]
        start = time.perf_counter()
        run(command)
        times.append(time.perf_counter() - start)
    return times


def check_isolation(run: Callable[[str], dict]) -> str:
    run("cd / && export WREN_LEAK=1")
    out = run('echo "${WREN_LEAK:-none} $PWD"')["output"].split()
    return "ok" if out and out[0] == "none" and out[1] != "/" else f"LEAK: {out}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=os.environ.get("WREN_TEST_IMAGE", "wren-test-python:bookworm"))
    parser.add_argument("-n", type=int, default=50, help="commands per one-process-per-command environment")
    parser.add_argument("--n-fast", type=int, default=500, help="commands per persistent-shell environment")
    args = parser.parse_args()

    from wren.environments.docker import DockerEnvironment, docker_available
    from wren.environments.local import LocalEnvironment
    from wren.environments.sandbox import SandboxEnvironment

    results: dict[str, tuple[list[float], str]] = {}
    workdir = tempfile.mkdtemp(prefix="wren-bench-")
    results["local"] = (measure(LocalEnvironment(cwd=workdir).execute, args.n), "n/a")
    try:
        sandbox = SandboxEnvironment(workdir=workdir, cwd=workdir)
        results["sandbox (bwrap per command)"] = (measure(sandbox.execute, args.n), "n/a")
        sandbox_p = SandboxEnvironment(workdir=workdir, cwd=workdir, persistent=True)
        results["sandbox persistent shell"] = (
            measure(sandbox_p.execute, args.n_fast),
            check_isolation(sandbox_p.execute),
        )
        sandbox_p.close()
    except Exception as e:  # no bubblewrap here: say so and go on
        print(f"sandbox skipped: {e}")

    if not docker_available():
        print("docker skipped: no engine reachable (run .ci/docker_setup.sh)")
    else:
        from minisweagent.environments.docker import DockerEnvironment as MiniDocker

        wren = DockerEnvironment(image=args.image, cwd="/tmp")
        try:
            results["docker exec (wren)"] = (measure(wren.execute, args.n), "n/a")
            wren.config.persistent = True
            results["docker persistent shell (wren)"] = (
                measure(wren.execute, args.n_fast),
                check_isolation(wren.execute),
            )
        finally:
            wren.close()
        mini = MiniDocker(image=args.image, cwd="/tmp")
        try:
            results["mini-swe-agent 2.4.6 DockerEnvironment"] = (
                measure(lambda c: mini.execute({"command": c}), args.n),
                "n/a",
            )
        finally:
            mini.cleanup()

    peer = results.get("mini-swe-agent 2.4.6 DockerEnvironment")
    peer_mean = statistics.mean(peer[0]) if peer else None
    print(f"\nimage: {args.image}; commands: {COMMANDS}")
    print(
        f"{'environment':42} {'n':>5} {'mean ms':>9} {'median ms':>10} {'p95 ms':>8} {'x mini':>8}  isolation"
    )
    for name, (times, isolation) in results.items():
        mean = statistics.mean(times)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        ratio = f"{mean / peer_mean:.4f}" if peer_mean else "-"
        print(
            f"{name:42} {len(times):5d} {1000 * mean:9.2f} {1000 * statistics.median(times):10.2f} "
            f"{1000 * p95:8.2f} {ratio:>8}  {isolation}"
        )
    if peer_mean and "docker persistent shell (wren)" in results:
        ratio = statistics.mean(results["docker persistent shell (wren)"][0]) / peer_mean
        verdict = "meets" if ratio <= 0.05 else "misses"
        print(f"\npersistent docker / mini-swe-agent docker = {ratio:.4f} ({verdict} the <= 0.05 target)")


if __name__ == "__main__":
    main()
