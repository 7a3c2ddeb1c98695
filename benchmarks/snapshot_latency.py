"""Milliseconds per workspace snapshot and restore in local, sandbox and docker, beside two peers
measured in the same run: one empty command through the same environment (the floor every snapshot
pays) and a full copy of the tree (`cp -a`, the naive way to save a state).

    python benchmarks/snapshot_latency.py [--files 2000] [-n 10] [--envs local,sandbox,docker]

The workspace is a git repository of `--files` small Python files in nested directories; each step
edits a tracked file, adds an untracked one and deletes one, then saves; restores go back to an
earlier step's snapshot, so every restore rewrites, re-creates and removes files.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from wren.environments.snapshot import WorkspaceSnapshots

MAKE_REPO = (
    "git init -q -b main . && for d in $(seq 0 {dirs}); do mkdir -p pkg$d/sub; "
    "for f in $(seq 0 {per}); do printf 'def f{{}}():\\n    return %s\\n' $f > pkg$d/sub/m$f.py; done; done && "
    "git add -A && git -c user.email=b@b -c user.name=b commit -qm base"
)


def _env(kind: str, work: Path, image: str):
    if kind == "local":
        from wren.environments.local import LocalEnvironment

        return LocalEnvironment(cwd=str(work)), str(work)
    if kind == "sandbox":
        from wren.environments.sandbox import SandboxEnvironment

        return SandboxEnvironment(workdir=str(work), cwd=str(work)), str(work)
    from wren.environments.docker import DockerEnvironment

    env = DockerEnvironment(image=image, cwd="/", persistent=False)
    env.execute("mkdir -p /work")
    env.config.cwd = "/work"
    return env, "/work"


def _ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:7.1f}"


def bench(kind: str, files: int, n: int, image: str) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        env, root = _env(kind, work, image)
        try:
            per = 20
            env.execute(MAKE_REPO.format(dirs=max(files // per - 1, 0), per=per - 1), timeout=600)
            snaps = WorkspaceSnapshots(env, root=root)
            out: dict[str, list[float]] = {"save": [], "restore": [], "empty": [], "copy": []}
            saved = [snaps.save()]
            for i in range(n):
                env.execute(
                    f"echo 'x = {i}' >> pkg0/sub/m1.py && echo new > new{i}.txt && rm -f pkg1/sub/m{i % 20}.py"
                )
                start = time.perf_counter()
                saved.append(snaps.save())
                out["save"].append(time.perf_counter() - start)
            for i in range(n):
                target = saved[(i * 7) % len(saved)]
                start = time.perf_counter()
                snaps.restore(target)
                out["restore"].append(time.perf_counter() - start)
            for i in range(n):
                start = time.perf_counter()
                env.execute("true")
                out["empty"].append(time.perf_counter() - start)
                start = time.perf_counter()
                env.execute(f"rm -rf ../copy{i % 2} && cp -a . ../copy{i % 2}" if kind != "sandbox" else
                            f"rm -rf .copy{i % 2} && mkdir .copy{i % 2} && cp -a pkg* .copy{i % 2}/")  # fmt: skip
                out["copy"].append(time.perf_counter() - start)
            return out
        finally:
            env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--envs", default="local,sandbox,docker")
    parser.add_argument("--image", default="wren-test-python:bookworm")
    args = parser.parse_args()
    print(f"workspace: git repo of {args.files} files; {args.n} saves and {args.n} restores; median ms")
    print(f"{'env':8} {'save':>7} {'restore':>7} {'empty cmd':>9} {'cp -a':>7}  save/cp  restore/cp")
    for kind in args.envs.split(","):
        try:
            r = bench(kind, args.files, args.n, args.image)
        except Exception as e:  # an environment this machine lacks is reported, not fatal
            print(f"{kind:8} unavailable: {type(e).__name__}: {str(e)[:100]}")
            continue
        copy = statistics.median(r["copy"])
        print(
            f"{kind:8} {_ms(r['save'])} {_ms(r['restore'])} {_ms(r['empty']):>9} {_ms(r['copy'])}"
            f"  {statistics.median(r['save']) / copy:6.2f}x  {statistics.median(r['restore']) / copy:8.2f}x"
        )


if __name__ == "__main__":
    main()
