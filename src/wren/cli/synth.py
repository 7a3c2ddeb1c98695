"""`wren synth`: tasks with known fixes, made by breaking a repository's code on purpose."""

from __future__ import annotations

import typer


def _statement_model(specs: list[str], model: str | None, slm: str | None) -> dict | None:
    """The model config for statements from -m/--slm/-c (as `wren run` reads them), or None."""
    if not (model or slm or specs):
        return None
    from wren.config.assemble import assemble_config

    cfg = assemble_config(specs, model=model, slm=slm)
    data = cfg.model.model_dump(exclude_defaults=True)
    return data if data.get("name") else None


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth_command(
        repo_dir: str = typer.Argument(
            None, help="Repository to break (Python code with pytest tests); not with --from-tasks."
        ),
        output: str = typer.Option(..., "-o", "--output", help="Tasks JSONL file (appended to; resumable)."),
        max_tasks: int = typer.Option(0, "--max", help="Stop after this many tasks (0 = one pass over all)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the order candidates are tried in."),
        workers: int = typer.Option(
            None, "--workers", "-w", help="Candidates validated at once (default: CPUs)."
        ),
        repos_dir: str = typer.Option(
            "", "--repos-dir", help="Where the git snapshot goes (default: repos/ beside the output)."
        ),
        owner: str = typer.Option("local", "--owner", help="Owner part of the tasks' repo field."),
        name: str = typer.Option(
            "", "--name", help="Name part of the repo field (default: the directory's)."
        ),
        mutators: str = typer.Option("", "--mutators", help="Comma-separated mutator names (default: all)."),
        test_cmd: str = typer.Option(
            "", "--test-cmd", help="pytest command for the repo root (default: python -m pytest -rA)."
        ),
        python: str = typer.Option(
            "",
            "--python",
            help="Interpreter that runs the tests (default: one in the environment the judge builds).",
        ),
        env_cache: str = typer.Option(
            "", "--env-cache", help="The judge's environment cache (default: ~/.cache/wren/envs)."
        ),
        timeout: float = typer.Option(60.0, "--timeout", help="Most seconds one validation run may take."),
        suite_timeout: float = typer.Option(
            1800.0, "--suite-timeout", help="Most seconds for one clean run."
        ),
        model: str = typer.Option(None, "-m", "--model", help="Model that writes problem statements."),
        slm: str = typer.Option(None, "--slm", help="SLM provider or catalog name that writes statements."),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file or key.path=value for the statement model (model.*)."
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Start over instead of resuming (--from-tasks: replace -o)."
        ),
        list_mutators: bool = typer.Option(False, "--list-mutators", help="List the mutators and exit."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        report_path: str = typer.Option("", "--report", help="Also write the run's figures as JSON here."),
        hint_level: int = typer.Option(
            1,
            "--hint-level",
            min=0,
            max=4,
            help="Statements at this rung: 0 issue only, 1 failing tests, 2 +file and function, "
            "3 +the wrong lines, 4 +the lines as they must read.",
        ),
        from_tasks: str = typer.Option(
            "",
            "--from-tasks",
            help="Rewrite this tasks file's statements at --hint-level into -o (no synthesis).",
        ),
    ) -> None:
        """Break functions in REPO_DIR with mutators, keep the breakages its tests catch, write tasks.

        With --from-tasks, rewrite an existing tasks file at another hint level instead."""
        import json
        import sys
        from pathlib import Path

        from rich.console import Console
        from rich.text import Text

        from wren.exceptions import ConfigError, ModelNotFound, WrenError

        console = Console(stderr=True, soft_wrap=True)
        if list_mutators:
            from wren.synth.mutators import MUTATORS

            for key, cls in MUTATORS.items():
                console.print(f"[bold]{key}[/bold]: {cls.summary}")
            return
        if bool(repo_dir) == bool(from_tasks):
            raise ConfigError("give either REPO_DIR (to synthesize) or --from-tasks TASKS.jsonl (to rewrite)")
        if from_tasks:
            from wren.synth.ladder import rewrite_tasks

            try:
                count = rewrite_tasks(from_tasks, hint_level, output, overwrite=overwrite)
            except WrenError as e:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(1)
            console.print(Text(f"{count} tasks at hint level {hint_level}: {output}"), highlight=False)
            return

        from wren.synth.pipeline import SynthConfig, synthesize

        data = {
            "repo_dir": repo_dir,
            "output": output,
            "repos_dir": repos_dir,
            "owner": owner,
            "name": name,
            "max_tasks": max_tasks,
            "seed": seed,
            "mutators": [m.strip() for m in mutators.split(",") if m.strip()],
            "test_cmd": test_cmd,
            "python": python,
            "env_cache": env_cache,
            "timeout": timeout,
            "suite_timeout": suite_timeout,
            "model": _statement_model(config, model, slm),
            "overwrite": overwrite,
            "hint_level": hint_level,
            "progress": not quiet,
        }
        if workers is not None:
            data["workers"] = workers
        from wren.config.loader import validate

        config = validate(SynthConfig, data, where="synth")
        try:
            report = synthesize(config)
        except (ConfigError, ModelNotFound):
            raise  # the entry point prints these
        except WrenError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        console.print(
            f"{report.validated} tasks from {report.tried} candidates tried "
            f"(yield {report.yield_rate:.0%}; {report.reachable} of {report.candidates} candidates reached by "
            f"{report.stable_tests} stable tests; {report.skipped_done} done before) in "
            f"{report.seconds.get('total', 0):.1f} s, {report.tasks_per_minute:.0f} tasks/min",
            highlight=False,
        )
        if report.dropped:
            console.print(
                Text("dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(report.dropped.items())))
            )
        console.print(Text(f"tasks: {report.output}\nrepos: {report.repos_entry}"), highlight=False)
        if report_path:
            Path(report_path).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
