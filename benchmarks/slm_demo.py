"""The demo, ten times: `wren run` with no model on the demo task, one sampling seed per run.

Each run is what `scripts/demo.sh --toy` runs (a fresh git repository, the slm config, step limit 8), with
`model.completion_kwargs.seed=N` and a sampling temperature so that the runs differ; the greedy run
(temperature 0, the config's default) is reported beside them. A run succeeds when it ends Submitted,
exits 0, and notes.txt holds hello. The server is started once and reused, as the demo reuses it.

    python benchmarks/slm_demo.py [--runs 10] [--temperature 0.3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.slm_common import embedded_port  # noqa: E402
from tests.peers.git_repo import make_git_repo  # noqa: E402

TASK = "Create a file named notes.txt containing the word hello."
WREN = [sys.executable, "-m", "wren.cli.main"]


def one_run(port: int, overrides: list[str]) -> tuple[bool, str, float]:
    repo = make_git_repo(Path(tempfile.mkdtemp()) / "repo", {"README.md": "hello world\n"})
    start = time.perf_counter()
    proc = subprocess.run(
        [*WREN, "run", "--yolo", "-t", TASK, "--cwd", str(repo), "-o", str(repo / ".wren-run"),
         "-c", "agent.step_limit=8", "-c", f"run.embedded_port={port}", *(arg for o in overrides for arg in ("-c", o))],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"}, timeout=1800,
    )  # fmt: skip
    wall = time.perf_counter() - start
    notes = repo / "notes.txt"
    ok = proc.returncode == 0 and notes.is_file() and notes.read_text().strip() == "hello"
    last = [line for line in proc.stdout.splitlines() if " after " in line and " steps" in line]
    return ok, (last[-1].strip() if last else proc.stderr.strip()[-200:]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.3)
    args = parser.parse_args()
    with embedded_port() as port:
        ok, line, wall = one_run(port, [])
        print(
            f"greedy (temperature 0): {'ok ' if ok else 'FAIL'} {wall:6.1f} s  {line}  (includes server start)"
        )
        wins, walls = 0, []
        for seed in range(args.runs):
            ok, line, wall = one_run(
                port, [f"model.temperature={args.temperature}", f"model.completion_kwargs.seed={seed}"]
            )
            wins += ok
            walls.append(wall)
            print(
                f"seed {seed} (temperature {args.temperature}): {'ok ' if ok else 'FAIL'} {wall:6.1f} s  {line}"
            )
        print(f"{wins}/{args.runs} runs succeeded; mean wall {sum(walls) / len(walls):.1f} s per run")


if __name__ == "__main__":
    main()
