"""`wren run`: one task, one agent, shown step by step."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer


def _read_task(task: str | None) -> str:
    if task is None:
        if sys.stdin.isatty():
            return typer.prompt("Task")
        return sys.stdin.read()
    if task.startswith("@"):
        return Path(task[1:]).read_text()
    return task


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        task: str = typer.Option(None, "-t", "--task", help="The task; @FILE reads it from a file; default: stdin."),
        model: str = typer.Option(None, "-m", "--model", help="Model name (LiteLLM name or catalog entry)."),
        slm: str = typer.Option(None, "--slm", help="An SLM provider or catalog entry by name."),
        config: list[str] = typer.Option([], "-c", "--config", help="YAML file, built-in name, or key.path=value."),
        env: str = typer.Option(None, "--env", help="Environment kind: local, docker, apptainer, sandbox."),
        cwd: str = typer.Option(None, "--cwd", help="Working directory of the agent's commands."),
        yolo: bool = typer.Option(False, "--yolo", help="Run every command without asking."),
        output: str = typer.Option(None, "-o", "--output", help="Where the trajectory goes (a directory)."),
        check_model: bool = typer.Option(False, "--check-model", help="Ping the model before the run."),
    ) -> None:
        """Run one task with the agent; exit 0 when it submitted."""
        from wren.cli.display import StepPrinter, console
        from wren.config.assemble import assemble_config
        from wren.environments import get_environment
        from wren.models import get_model
        from wren.run import run_agent
        from wren.serve.embedded import embedded_config

        cfg = assemble_config(config, model=model, slm=slm, env_kind=env, cwd=cwd, embedded=embedded_config)
        model_obj = get_model(cfg.model)
        if check_model or cfg.run.check_model:
            from wren.models.health import check_models, print_checks

            results = check_models({cfg.model.name or "model": cfg.model})
            print_checks(results)
            if not all(r.ok for r in results):
                raise typer.Exit(1)
        text = _read_task(task)
        out_dir = Path(output or cfg.run.output or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
        if out_dir.suffix == ".json":
            out_dir = out_dir.parent
        instance_id = cfg.run.instance_id or "run"
        environment = get_environment(cfg.environment)
        printer = StepPrinter()
        try:
            result = run_agent(cfg, text, env=environment, model=model_obj, output_dir=out_dir, instance_id=instance_id, hooks=[printer])
        finally:
            close = getattr(environment, "close", None)
            if close:
                close()
        console.print(
            f"[bold]{result.exit_status}[/bold] after {result.n_steps} steps, cost ${result.cost:.4f}; "
            f"trajectory in {out_dir}"
        )
        if result.exit_status != "Submitted":
            raise typer.Exit(1)
