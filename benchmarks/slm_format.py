"""Format errors of the embedded SLM over 20 short tasks, with and without constrained output.

Each task of benchmarks/slm_tasks.jsonl runs with the slm config (two steps each) once with
`model.constrain=off` and once with `model.constrain=auto` (llama.cpp: a grammar), on the same
server. A format error is a reply without exactly one bash block. Prints the rate for each and the
tasks that submitted.

    python benchmarks/slm_format.py [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.slm_common import assistant_extras, embedded_server, run_slm_agent  # noqa: E402
from tests.peers.git_repo import make_git_repo  # noqa: E402

TASKS = Path(__file__).with_name("slm_tasks.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    tasks = [json.loads(line)["task"] for line in TASKS.read_text().splitlines() if line.strip()]
    with embedded_server() as api_base:
        for mode in ("off", "auto"):
            calls = errors = submitted = tokens = 0
            decode_s = 0.0
            start = time.perf_counter()
            for task in tasks:
                repo = make_git_repo(
                    Path(tempfile.mkdtemp()) / "repo", {"README.md": "hello world\nsecond line\n"}
                )
                overrides = [
                    f"agent.step_limit={args.steps}",
                    "agent.max_format_errors=0",
                    f"model.constrain={mode}",
                ]
                result = run_slm_agent(api_base, task, repo, overrides)
                extras = assistant_extras(result)
                calls += len(extras)
                tokens += sum(e.get("completion_tokens", 0) for e in extras)
                decode_s += sum(e.get("latency", 0.0) for e in extras)
                errors += sum(
                    1
                    for m in result.messages
                    if m["role"] == "user" and m["content"].startswith("Format error")
                )
                submitted += result.exit_status == "Submitted"
            wall = time.perf_counter() - start
            print(
                f"constrain={mode:4s}: {errors}/{calls} replies were format errors ({errors / max(calls, 1):.1%}); "
                f"{submitted}/{len(tasks)} tasks submitted; {tokens} completion tokens in {decode_s:.0f} s of "
                f"model calls; wall {wall:.0f} s"
            )


if __name__ == "__main__":
    main()
