"""Seconds per agent step: Wren vs mini-swe-agent 2.4.6 on the same scripted HTTP run.

Both agents talk to the same scripted OpenAI-compatible server (a separate process), which answers
N `true` actions and then the submit command; both run commands in a local environment and save
their trajectories. Per-step time is taken around each agent's `step()`.

    python benchmarks/agent_overhead.py [--steps 50 400]

Prints mean ms per step for each run length, the ratio Wren / mini-swe-agent, and how much a
late step costs compared with an early one (steps 381-400 vs 31-50 of the longest run).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MSWEA_COST_TRACKING", "ignore_errors")

from tests.conftest import SUBMIT, bash  # noqa: E402


class ScriptServer:
    """The scripted server in its own process, so its work does not share the agents' GIL."""

    def __init__(self, n_steps: int, workdir: Path):
        script = workdir / f"script-{n_steps}.json"
        script.write_text(json.dumps([{"content": bash("true"), "repeat": n_steps}, SUBMIT]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.peers.openai_server", "--script", str(script), "--no-record"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        self.url = f"http://127.0.0.1:{line.split()[1]}/v1"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def timed(step):
    durations: list[float] = []

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)

    return wrapper, durations


def run_wren(n_steps: int, workdir: Path, client: str = "auto") -> list[float]:
    from wren.config.schema import load_config
    from wren.environments import get_environment
    from wren.models import get_model
    from wren.run import run_agent

    server = ScriptServer(n_steps, workdir)
    try:
        config = load_config([f"model.api_base={server.url}", "model.name=openai/bench", f"model.client={client}",
                              "agent.step_limit=0", "agent.cost_limit=0"], environ={})  # fmt: skip
        model = get_model(config.model)
        env = get_environment("local", cwd=str(workdir))
        from wren.agents.default import DefaultAgent

        class Timed(DefaultAgent):
            pass

        Timed.step, durations = timed(DefaultAgent.step)
        result = run_agent(
            config,
            "bench",
            env=env,
            model=model,
            output_dir=workdir / f"wren-{client}-{n_steps}",
            agent_class=Timed,
        )
        assert result.exit_status == "Submitted", result.exit_status
        return durations
    finally:
        server.stop()


def run_mini(n_steps: int, workdir: Path) -> list[float]:
    import yaml
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.config import builtin_config_dir
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.litellm_textbased_model import LitellmTextbasedModel

    server = ScriptServer(n_steps, workdir)
    try:
        config = yaml.safe_load((builtin_config_dir / "mini_textbased.yaml").read_text())
        agent_cfg = {
            k: v for k, v in config["agent"].items() if k in ("system_template", "instance_template")
        }
        model_cfg = {
            k: v for k, v in config["model"].items() if k in ("observation_template", "format_error_template")
        }
        model = LitellmTextbasedModel(
            model_name="openai/bench",
            model_kwargs={"api_base": server.url, "api_key": "none", "temperature": 0.0},
            action_regex=r"```bash\s*\n(.*?)\n```",
            cost_tracking="ignore_errors",
            **model_cfg,
        )
        env = LocalEnvironment(cwd=str(workdir))

        class Timed(DefaultAgent):
            pass

        Timed.step, durations = timed(DefaultAgent.step)
        agent = Timed(
            model,
            env,
            step_limit=0,
            cost_limit=0,
            output_path=workdir / f"mini-{n_steps}.traj.json",
            **agent_cfg,
        )
        result = agent.run("bench")
        assert result.get("exit_status") == "Submitted", result
        return durations
    finally:
        server.stop()


def window(durations: list[float], end: int, width: int = 20) -> float:
    return statistics.mean(durations[max(end - width, 0) : end])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 400])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
        runs = {}
        for n in args.steps:
            # Warm both stacks (imports, connection set-up) outside the measured runs.
            if not runs:
                run_wren(3, workdir), run_wren(3, workdir, "litellm"), run_mini(3, workdir)
            runs[n] = {
                "wren": run_wren(n, workdir),
                "wren (litellm client)": run_wren(n, workdir, "litellm"),
                "mini-swe-agent 2.4.6": run_mini(n, workdir),
            }
            for name, durations in runs[n].items():
                rows.append((n, name, statistics.mean(durations) * 1000, len(durations)))
    print(f"{'steps':>6}  {'agent':<24} {'ms/step':>9} {'calls':>6}")
    for n, name, ms, calls in rows:
        print(f"{n:>6}  {name:<24} {ms:>9.2f} {calls:>6}")
    for n in args.steps:
        wren_ms = statistics.mean(runs[n]["wren"]) * 1000
        mini_ms = statistics.mean(runs[n]["mini-swe-agent 2.4.6"]) * 1000
        lite_ms = statistics.mean(runs[n]["wren (litellm client)"]) * 1000
        print(
            f"{n} steps: wren / mini-swe-agent = {wren_ms / mini_ms:.3f}x; direct client / litellm client = {wren_ms / lite_ms:.3f}x"
        )
    longest = max(args.steps)
    if longest >= 100:
        for name, durations in runs[longest].items():
            late, early = window(durations, longest), window(durations, 50)
            print(
                f"{name}: steps {longest - 19}-{longest} cost {late * 1000:.2f} ms vs steps 31-50 {early * 1000:.2f} ms = {late / early:.2f}x"
            )


if __name__ == "__main__":
    main()
