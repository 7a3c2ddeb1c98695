"""A 40-step run of the embedded SLM against a 4,096-token server: history processors side by side.

Three runs of the same task on the same server, each in a fresh copy of a repository whose every
command prints a lot (benchmarks/slm_history_repo.py: `pytest -v` prints 400 lines, each module is
about 80 lines): no history processing (the peer: every observation whole, as mini-swe-agent sends
it), eliding old observations four at a time (block 4), and eliding them at every step (block 1).
Prints, for each run, how it ended, its largest prompt, the prompt tokens the server processed
(not taken from its prefix cache, by the server's own `cached_tokens` counts) and the hit rate, wall
time, and the commands the model ran. The bundled model submits after a step or two, so this
benchmark's environment accepts the submit command only once the tests pass: until then it runs
`python -m pytest -v` instead and answers "Not done yet" with that command's real output. The runs
last until their step limit, a submission with passing tests, or the context window.

    python benchmarks/slm_history.py [--steps 40] [--n-ctx 4096] [--keep-last 2] [--cap 200] [--old-replies command]
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.slm_common import assistant_extras, embedded_server, run_slm_agent  # noqa: E402
from benchmarks.slm_history_repo import repo_files  # noqa: E402
from tests.peers.git_repo import make_git_repo  # noqa: E402
from wren.environments.base import SUBMIT_MARKERS  # noqa: E402
from wren.environments.local import LocalEnvironment  # noqa: E402

TASK = "One test of this project fails: python -m pytest -v shows which. Find the bug and fix it."
CHECK = "python -m pytest -v -p no:cacheprovider"  # run in place of a submission, which waits for it to pass
CELLS = {
    "no history processing (peer)": None,
    "elide in blocks (block 4)": 4,
    "elide every step (block 1)": 1,
}


class NoSubmitEnvironment(LocalEnvironment):
    """A local environment that refuses the submit command while the tests fail; notes each command."""

    commands: list[str]

    def execute(self, command: str, *args, **kwargs):
        self.commands.append(command)
        if any(marker in command for marker in SUBMIT_MARKERS):
            check = super().execute(CHECK, *args, **kwargs)
            if check["returncode"] != 0:
                return {**check, "output": f"Not done yet: `{CHECK}` still fails.\n{check['output']}"}
        return super().execute(command, *args, **kwargs)


def command_summary(commands: list[str], width: int = 60) -> str:
    counts = collections.Counter(" ".join(c.split())[:width] for c in commands)
    return "; ".join(f"{n}x {c}" if n > 1 else c for c, n in counts.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--keep-last", type=int, default=2, help="observations kept whole")
    parser.add_argument("--cap", type=int, default=200, help="max_observation_tokens of those kept")
    parser.add_argument("--old-replies", default="command", choices=["whole", "command"])
    args = parser.parse_args()
    # The agent logs a run that the context window ends with its traceback; the "ended by" line says it.
    logging.getLogger("wren.agent").setLevel(logging.CRITICAL)
    with embedded_server(n_ctx=args.n_ctx) as api_base:
        print(f"server: {api_base}, {args.n_ctx} tokens of context, {args.steps} steps; task: {TASK}")
        print(
            f"history of the processed runs: keep_last {args.keep_last}, max_observation_tokens {args.cap}, "
            f"old_replies {args.old_replies}"
        )
        for name, block in CELLS.items():
            overrides = [f"agent.step_limit={args.steps}", "agent.max_format_errors=0"]
            if block is None:
                overrides += ["agent.history.keep_last=0", "agent.history.max_observation_tokens=0"]
            else:
                overrides += [
                    f"agent.history.keep_last={args.keep_last}",
                    f"agent.history.max_observation_tokens={args.cap}",
                    f"agent.history.block={block}",
                    f"agent.history.old_replies={args.old_replies}",
                ]
            repo = make_git_repo(Path(tempfile.mkdtemp()) / "repo", repo_files())
            commands: list[str] = []
            environment = type("Env", (NoSubmitEnvironment,), {"commands": commands})
            start = time.perf_counter()
            result = run_slm_agent(api_base, TASK, repo, overrides, environment=environment)
            wall = time.perf_counter() - start
            calls = assistant_extras(result)
            prompt = sum(c.get("prompt_tokens", 0) for c in calls)
            cached = sum(c.get("cached_tokens", 0) for c in calls)
            largest = max((c.get("prompt_tokens", 0) for c in calls), default=0)
            reason = (result.messages[-1].get("extra") or {}).get("reason", "")
            print(
                f"  {name:29s} {result.exit_status:16s} steps {result.n_steps:2d}  largest prompt {largest:4d}  "
                f"prompt tokens {prompt:6d}, processed {prompt - cached:6d}  cache hit {cached / max(prompt, 1):6.1%}  "
                f"wall {wall:5.0f} s",
                flush=True,
            )
            print(f"    ended by: {reason[:160]}", flush=True)
            print(f"    commands: {command_summary(commands)[:600]}", flush=True)


if __name__ == "__main__":
    main()
