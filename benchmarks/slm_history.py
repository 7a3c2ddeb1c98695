"""A 40-step run of the embedded SLM against a 4,096-token server: history processors side by side.

Three runs of the same task on the same server: no history processing (the peer: every observation
whole, as mini-swe-agent sends it), eliding old observations four at a time (block 4), and eliding
them at every step (block 1). Prints how each run ended, and the prefix-cache hit rate: prompt tokens
the server took from its cache (its `cached_tokens` counts) over all prompt tokens. The bundled model
submits after a step or two, so this benchmark's environment refuses the submit command ("not done
yet"): the runs last until their step limit or until the context window stops them.

    python benchmarks/slm_history.py [--steps 40] [--n-ctx 4096]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.slm_common import assistant_extras, embedded_server, git_repo, run_slm_agent  # noqa: E402
from wren.environments.base import SUBMIT_MARKERS  # noqa: E402
from wren.environments.local import LocalEnvironment  # noqa: E402

TASK = (
    "Show the contents of every file in the data directory, one file per command, "
    "then count the lines of all of them together."
)
CELLS = {
    "no history processing (peer)": [],
    "elide in blocks (block 4)": ["agent.history.block=4"],
    "elide every step (block 1)": ["agent.history.block=1"],
}


class NoSubmitEnvironment(LocalEnvironment):
    """A local environment that answers the submit command with "not done yet"."""

    def execute(self, command: str, **kwargs):
        if any(marker in command for marker in SUBMIT_MARKERS):
            return {"output": "Not done yet: show the next file of the data directory.", "returncode": 1}
        return super().execute(command, **kwargs)


def data_files() -> dict[str, str]:
    lines = [f"record {i:03d}: the quick brown fox jumps over the lazy dog" for i in range(30)]
    return {f"data/part{n:02d}.txt": "\n".join(lines) + "\n" for n in range(1, 16)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()
    history = ["agent.history.keep_last=2", "agent.history.max_observation_tokens=120"]
    with embedded_server(n_ctx=args.n_ctx) as api_base:
        print(f"server: {api_base}, {args.n_ctx} tokens of context; task: {TASK}")
        for name, extra in CELLS.items():
            overrides = [f"agent.step_limit={args.steps}", "agent.max_format_errors=0"]
            if extra:
                overrides += history + extra
            else:
                overrides += ["agent.history.keep_last=0", "agent.history.max_observation_tokens=0"]
            repo = git_repo(Path(tempfile.mkdtemp()) / "repo", data_files())
            start = time.perf_counter()
            result = run_slm_agent(api_base, TASK, repo, overrides, environment=NoSubmitEnvironment)
            wall = time.perf_counter() - start
            calls = assistant_extras(result)
            prompt = sum(c.get("prompt_tokens", 0) for c in calls)
            cached = sum(c.get("cached_tokens", 0) for c in calls)
            reason = (result.messages[-1].get("extra") or {}).get("reason", "")
            print(
                f"  {name:30s} exit {result.exit_status:18s} steps {result.n_steps:3d}  "
                f"largest prompt {max((c.get('prompt_tokens', 0) for c in calls), default=0):5d} tokens  "
                f"cache hit {cached / max(prompt, 1):6.1%} ({cached}/{prompt})  wall {wall:6.1f} s",
                flush=True,
            )
            if "step limit" not in reason:
                print(f"    ended by: {reason[:200]}", flush=True)


if __name__ == "__main__":
    main()
