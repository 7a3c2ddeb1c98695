"""`wren replay TRAJ`: re-execute a run's actions and report where observations differ."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        trajectory: str = typer.Argument(..., help="A *.traj.json, trajectory.jsonl, or a run directory."),
        cwd: str = typer.Option(None, "--cwd", help="Working directory for the replayed commands."),
        env: str = typer.Option("local", "--env", help="Environment kind."),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="Environment settings, e.g. environment.timeout=30."
        ),
    ) -> None:
        """Re-run each action of a saved trajectory; exit 1 if any observation differs."""
        from rich.markup import escape

        from wren.cli.display import console
        from wren.config.loader import load_config_dict
        from wren.environments import get_environment
        from wren.replay import replay as replay_run

        env_config = dict(load_config_dict(config, base=()).get("environment") or {})
        env_config["environment_class"] = env
        if cwd:
            env_config["cwd"] = cwd
        steps = replay_run(trajectory, get_environment(env_config))
        differing = [s for s in steps if not s.same]
        for s in steps:
            mark = "[green]same[/green]" if s.same else "[red]differs[/red]"
            console.print(f"step {s.step}: {mark}  {escape(s.action.splitlines()[0][:100])}")
            if not s.same:
                console.print(escape(s.diff()))
        console.print(f"{len(steps)} actions replayed, {len(differing)} observations differ")
        if differing:
            raise typer.Exit(1)
