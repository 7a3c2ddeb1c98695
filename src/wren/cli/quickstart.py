"""`wren quickstart`: Wren's whole job, small. Tasks synthesized from a sample project shipped with
Wren (`wren synth`), run by the agent (`wren batch`, the embedded model unless one is named), judged
(`wren eval`, with an HTML report), and one line that says how it went and where to look.

Each stage is the wren command a user would type, run as its own process and printed first, so the
same commands work on any repository and dataset.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import typer

from wren.cli import options

TOY_TASK = "Create a file named notes.txt containing the word hello."


def _sample_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "quickstart" / "sample"


def _wren(args: list[str]) -> int:
    shown = " ".join(a if a and " " not in a else repr(a) for a in args)
    typer.secho(f"$ wren {shown}", bold=True, err=True)
    return subprocess.run([sys.executable, "-m", "wren.cli.main", *args]).returncode


def register(app: typer.Typer) -> None:
    @app.command()
    def quickstart(
        output: str = typer.Option(
            None, "-o", "--output", help="Directory for everything (default: runs/quickstart-<time>)."
        ),
        tasks: int = typer.Option(4, "--tasks", "-n", help="How many tasks to synthesize and run."),
        step_limit: int = typer.Option(
            None, "--step-limit", help="Most steps per task (default 10; 8 with --toy)."
        ),
        workers: int = typer.Option(1, "--workers", "-w", help="Tasks run at once."),
        seed: int = typer.Option(0, "--seed", help="Which tasks the synthesis picks."),
        toy: bool = typer.Option(False, "--toy", help=f"Only the one-task toy instead: {TOY_TASK!r}"),
        model: str = options.MODEL,
        slm: str = options.SLM,
        config: list[str] = options.CONFIG,
    ) -> None:
        """Synthesize tasks from a sample project, run the agent on them, judge them, write a report.

        Exit 0 when every stage ran, whatever the number resolved.
        """
        from wren.exceptions import ConfigError

        step_limit = (8 if toy else 10) if step_limit is None else step_limit
        if tasks < 1 or step_limit < 1 or workers < 1:
            raise ConfigError("--tasks, --step-limit and --workers must be at least 1")
        out = Path(output or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} is not empty: give -o a new directory")
        out.mkdir(parents=True, exist_ok=True)
        model_args = [*(["-m", model] if model else []), *(["--slm", slm] if slm else [])]
        model_args += [arg for spec in config for arg in ("-c", spec)]
        if toy:
            raise typer.Exit(_toy(out, model_args, step_limit))

        repo = out / "textkit"
        shutil.copytree(_sample_dir(), repo, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        dataset, repos, runs = out / "tasks.jsonl", out / "repos", out / "runs"
        if _wren(["synth", str(repo), "-o", str(dataset), "--max", str(tasks), "--seed", str(seed),
                  "--repos-dir", str(repos), "-w", "1", "-q"]) != 0:  # fmt: skip
            raise typer.Exit(1)
        # The batch exits 1 when an instance failed outside the task; the judge still has its say.
        _wren(["batch", "--dataset", str(dataset), "--repos", str(repos), "--env", "local", "-o", str(runs),
               "--workers", str(workers), "-c", f"agent.step_limit={step_limit}", *model_args])  # fmt: skip
        preds = runs / "preds.json"
        if not preds.is_file():
            typer.echo(f"the batch wrote no predictions ({preds}); see the output above", err=True)
            raise typer.Exit(1)
        report = runs / "report.json"
        _wren(["eval", "--predictions", str(preds), "--dataset", str(dataset), "--repos", str(repos),
               "--env", "local", "-o", str(report)])  # fmt: skip
        if not report.is_file():
            typer.echo(f"the judge wrote no report ({report}); see the output above", err=True)
            raise typer.Exit(1)
        summary = json.loads(report.read_text())
        typer.secho(
            f"resolved {summary.get('resolved_instances', 0)} of {summary.get('total_instances', 0)}; "
            f"report: {report.with_suffix('.html')}; trajectories: {runs}/<task>/; "
            f"look at them: wren inspect {runs}",
            bold=True,
        )


def _toy(out: Path, model_args: list[str], step_limit: int) -> int:
    """The one-task toy: create notes.txt in a fresh git repository."""
    work = out / "repo"
    work.mkdir()
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "README.md").write_text("hello world\n")
    status = _wren(["run", "--yolo", "-t", TOY_TASK, "--cwd", str(work), "-c", f"agent.step_limit={step_limit}",
                    "-o", str(out / "run"), *model_args])  # fmt: skip
    notes = work / "notes.txt"
    if notes.is_file():
        typer.echo(f"notes.txt: {notes.read_text().strip()}")
    typer.secho(f"trajectory: {out / 'run'}; look at it: wren inspect {out / 'run'}", bold=True)
    return status
