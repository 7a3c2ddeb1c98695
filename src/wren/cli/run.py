"""`wren run`: one task, one agent, shown step by step.

On a terminal the run is interactive (confirm mode by default; see wren.agents.interactive); `-v` shows
it in a Textual TUI instead. `--yolo`, or stdin/stdout not being a terminal, means no questions.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from wren.cli import options

MODES = ("confirm", "yolo", "human")


def _read_task(task: str | None, user: Any = None) -> str:
    if task is None:
        if user is not None:
            return user.ask("What should the agent do?", kind="task")
        if sys.stdin.isatty():
            return typer.prompt("Task")
        return sys.stdin.read()
    if task.startswith("@"):
        from wren.exceptions import ConfigError

        try:
            return Path(task[1:]).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"-t {task}: cannot read the task file ({e.strerror or e})") from None
    return task


def _on_terminal() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (ValueError, OSError):  # closed or detached streams
        return False


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        task: str = typer.Option(
            None, "-t", "--task", help="The task; @FILE reads it from a file; default: stdin."
        ),
        model: str = options.MODEL,
        slm: str = options.SLM,
        config: list[str] = options.CONFIG,
        config_format: str = options.CONFIG_FORMAT,
        env: str = options.ENV,
        cwd: str = typer.Option(None, "--cwd", help="Working directory of the agent's commands."),
        yolo: bool = typer.Option(
            False, "--yolo", help="Run every command without asking; ask nothing at all."
        ),
        mode: str = typer.Option(
            None, "--mode", help="confirm (ask before each command), yolo, or human (you type the commands)."
        ),
        visual: bool = typer.Option(False, "-v", "--visual", help="Show the run in a Textual TUI."),
        output: str = typer.Option(None, "-o", "--output", help="Where the trajectory goes (a directory)."),
        check_model: bool = typer.Option(False, "--check-model", help="Ping the model before the run."),
        search: str = typer.Option(
            None, "--search", help="Search over steps: greedy, best-of-n or mcts (workspace snapshots)."
        ),
        budget: int = typer.Option(30, "--budget", help="Model calls the search may make (with --search)."),
        judge: str = typer.Option(
            "", "--judge", help="Check command that scores a finished run (exit 0 = reward 1), with --search."
        ),
        width: int = options.MCTS_K,
        value: str = typer.Option(
            "",
            "--value",
            help="Value model directory (`wren learn value`): values MCTS nodes, ranks best-of-n.",
        ),
        resume: str = typer.Option(
            None,
            "--resume",
            help="Continue the run in this -o directory whose process died (same model and config "
            "options as before); refused if its workspace changed since its last recorded step.",
        ),
    ) -> None:
        """Run one task with the agent; exit 0 when it submitted."""
        from rich.markup import escape

        from wren.agents.interactive import InteractiveAgent
        from wren.cli.display import StepPrinter, console
        from wren.config.assemble import assemble_config
        from wren.config.schema import InteractiveWrenConfig
        from wren.environments import environment_config, get_environment
        from wren.exceptions import ConfigError
        from wren.models import get_model
        from wren.run import run_agent
        from wren.serve.embedded import ensure_server

        saved = None
        if resume is not None:
            from wren.trajectory.resume import read_saved_run

            if task is not None or output is not None or search is not None:
                raise ConfigError(
                    "--resume continues the recorded task in its own directory: leave out -t, -o, --search"
                )
            saved = read_saved_run(resume)
            task, output = saved.task, resume
            cwd = cwd or (saved.config.get("environment") or {}).get("cwd")
            config = [*config, f"run.instance_id={saved.instance_id}"]
        if mode is not None and mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
        interactive = _on_terminal() and not yolo
        if visual and not _on_terminal():
            raise ConfigError("-v shows a TUI and needs a terminal on stdin and stdout")
        if mode == "human" and not interactive:
            raise ConfigError("--mode human needs a terminal (and no --yolo): you type the commands")

        cfg = assemble_config(
            config,
            model=model,
            slm=slm,
            env_kind=env,
            cwd=cwd,
            embedded=ensure_server,
            schema=InteractiveWrenConfig,
            config_format=config_format,
        )
        environment_config(cfg.environment)  # validated before anyone types a task
        agent_config = cfg.agent
        agent_config.mode = "yolo" if yolo else (mode or agent_config.mode)
        if not interactive and not visual:
            agent_config.mode = "yolo"  # nobody to ask
        model_obj = get_model(cfg.model)
        if check_model or cfg.run.check_model:
            from wren.cli.display import print_checks
            from wren.models.health import check_models

            results = check_models({cfg.model.name or "model": cfg.model})
            print_checks(results)
            if not all(r.ok for r in results):
                raise typer.Exit(1)

        user = None
        if _on_terminal() and (task is None or (interactive and not visual)):
            from wren.ui.terminal import TerminalUser

            user = TerminalUser()
        text = _read_task(task, user)
        if not interactive or visual:
            user = None  # nobody is asked in the REPL: with --yolo nobody at all, with -v the TUI asks
        out_dir = Path(output or cfg.run.output or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
        if out_dir.suffix == ".json":
            out_dir = out_dir.parent
        instance_id = cfg.run.instance_id or "run"
        if saved is not None:
            from wren.trajectory.resume import check_workspace

            check_workspace(saved, cfg.environment.get("cwd"), out_dir)
            console.print(f"resuming {escape(str(out_dir))} after step {saved.point.n_steps}")
        environment = get_environment(cfg.environment)

        def start(hooks: list[Any], run_user: Any) -> Any:
            return run_agent(
                cfg, text, env=environment, model=model_obj, output_dir=out_dir, instance_id=instance_id,
                hooks=hooks, agent_class=InteractiveAgent, user=run_user, resume_from=saved,
            )  # fmt: skip

        if search is not None:
            _run_search(
                cfg, text, environment, model_obj, out_dir, instance_id, search, budget, judge, width, value
            )
            return
        try:
            if visual:
                from wren.ui.run_app import RunApp

                tui = RunApp(start, config=agent_config, task=text, ask=not yolo)
                tui.run()
                if not tui.finished.is_set():
                    console.print("stopping the agent and saving its trajectory (at most 30 s) …")
                result = tui.wait_result(timeout=30)
            elif interactive:
                from wren.ui.terminal import LivePrinter

                result = start([LivePrinter()], user)
            else:
                result = start([StepPrinter()], None)
        finally:
            close = getattr(environment, "close", None)
            if close:
                close()
        if result is None:
            console.print(
                f"[bold]the run did not finish[/bold]; its trajectory so far is in {escape(str(out_dir))}"
            )
            raise typer.Exit(1)
        console.print(
            f"[bold]{escape(result.exit_status)}[/bold] after {result.n_steps} steps, cost ${result.cost:.4f}; "
            f"trajectory in {escape(str(out_dir))}"
        )
        if result.exit_status != "Submitted":
            raise typer.Exit(1)


def _run_search(
    cfg: Any, text: str, environment: Any, model: Any, out_dir: Path, instance_id: str,
    strategy: str, budget: int, judge: str, width: int, value: str = "",
) -> None:  # fmt: skip
    from wren.cli.display import console
    from wren.search.runner import run_search, search_from_options

    search = search_from_options(strategy, budget, width)
    value_fn = None
    if value:
        from wren.search.value import ValueModel

        value_fn = ValueModel.load(value)
        # The verifier ranks finished runs; the judge (when given) only scores the chosen one.
        search = search.model_copy(update={"evaluate": "value", "score_terminals": "value"})
    try:
        result = run_search(
            cfg, text, env=environment, model=model, output_dir=out_dir, search=search,
            judge_command=judge, instance_id=instance_id, value_fn=value_fn,
        )  # fmt: skip
    finally:
        close = getattr(environment, "close", None)
        if close:
            close()
    reward = "" if result.reward is None else f", reward {result.reward:g}"
    console.print(
        f"[bold]{result.exit_status}[/bold] by {strategy} after {result.model_calls} model calls, "
        f"{len(result.tree.nodes)} nodes{reward}; tree and trajectory in {out_dir}"
    )
    if result.exit_status != "Submitted":
        raise typer.Exit(1)
