"""Seconds and peak memory per instance of `wren eval`, with a cold environment cache and a warm one,
measured side by side in one run (the cold run is the peer: it builds every shared environment).

    python benchmarks/eval_env_cache.py                      # the packaged fixture repository, offline
    python benchmarks/eval_env_cache.py --dataset FILE --repos DIR --filter RE   # real instances

Each configuration runs `wren eval` (gold patches) in its own process; peak memory is the largest
resident set among that process and the processes it waited for (pip, pytest), from wait4's rusage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fixture(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    from tests.peers.fixture_repo import build_calc_repo, copies, write_jsonl
    from tests.peers.wheelhouse import build_wheelhouse

    inst = build_calc_repo(tmp / "repos", packaged=True)
    dataset = write_jsonl(tmp / "calc.jsonl", copies(inst, 3))
    wheels = build_wheelhouse(tmp / "wheels")
    return dataset, tmp / "repos", {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def _run(dataset: Path, repos: Path, cache: Path, out: Path, filter_re: str, env: dict[str, str]) -> dict:
    instances = [json.loads(line) for line in dataset.read_text().splitlines() if line.strip()]
    preds = out.parent / "preds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    preds.write_text(json.dumps({i["instance_id"]: {"model_patch": i["patch"]} for i in instances}))
    argv = [sys.executable, "-m", "wren.cli.main", "eval", "-p", str(preds), "-d", str(dataset),
            "--repos", str(repos), "--env", "local", "-c", f"bench.workspace.env_cache={cache}", "-o", str(out)]  # fmt: skip
    if filter_re:
        argv += ["--filter", filter_re]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"wren eval failed: {proc.stderr.read().decode()[-2000:]}")
    report = json.loads(out.read_text())
    n = report["submitted_instances"]
    return {
        "instances": n,
        "resolved": report["resolved_instances"],
        "seconds": seconds,
        "per_instance_s": seconds / max(n, 1),
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--repos", type=Path)
    parser.add_argument("--filter", default="")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wren-bench-eval."))
    try:
        if args.dataset:
            dataset, repos, env = args.dataset, args.repos, {}
        else:
            dataset, repos, env = _fixture(tmp)
        cache = tmp / "envs"
        cold = _run(dataset, repos, cache, tmp / "cold" / "report.json", args.filter, env)
        warm = _run(dataset, repos, cache, tmp / "warm" / "report.json", args.filter, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{'cache':<6} {'instances':>9} {'resolved':>8} {'seconds':>8} {'s/instance':>10} {'peak RSS MiB':>12}"
    )
    for name, row in (("cold", cold), ("warm", warm)):
        print(
            f"{name:<6} {row['instances']:>9} {row['resolved']:>8} {row['seconds']:>8.1f} "
            f"{row['per_instance_s']:>10.1f} {row['peak_rss_mib']:>12.1f}"
        )
    print(
        f"warm/cold: time {warm['seconds'] / cold['seconds']:.2f}x, "
        f"peak memory {warm['peak_rss_mib'] / cold['peak_rss_mib']:.2f}x"
    )


if __name__ == "__main__":
    main()
