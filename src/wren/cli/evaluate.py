"""`wren eval`: evaluate predictions against a dataset, locally, with a verdict per instance."""

from __future__ import annotations

import typer

from wren.cli import options


def trust_table_view(per_repo: dict) -> object:
    """The trust table of `--validate`: one row per repository, then its reasons grouped."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title="how far the judge can be trusted, per repository")
    table.add_column("repository", no_wrap=True)
    for column in ("instances", "gold resolved", "empty resolved", "error (gold/empty)", "labels"):
        table.add_column(column, justify="right")
    reasons = []
    for repo, row in per_repo.items():
        table.add_row(
            repo,
            str(row["instances"]),
            str(row["gold_resolved"]),
            str(row["empty_resolved"]),
            f"{row['gold_error']}/{row['empty_error']}",
            str(row["labels_flagged"]),
        )
        for kind, ids in sorted(row["reasons"].items(), key=lambda item: -len(item[1])):
            reasons.append(
                Text.from_markup(f"  {escape(repo)}: {escape(kind)} ({len(ids)}): {escape(', '.join(ids))}")
            )
    return Group(table, *reasons)


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def evaluate_command(
        predictions: str = typer.Option(
            None, "--predictions", "-p", help="preds.json (or a JSON/JSONL list); not with --validate."
        ),
        dataset: str = options.DATASET,
        output: str = typer.Option(
            ..., "-o", "--output", help="Report JSON path; an HTML page goes beside it."
        ),
        split: str = options.SPLIT,
        repos: str = options.REPOS,
        env: str = options.ENV,
        image: str = options.IMAGE,
        image_template: str = options.IMAGE_TEMPLATE,
        workers: int = typer.Option(1, "--workers", "-w", help="Instances evaluated at once."),
        timeout: float = typer.Option(None, "--timeout", help="Seconds the tests of one instance may run."),
        filter_re: str = options.FILTER,
        validate: bool = typer.Option(
            False,
            "--validate",
            help="Run every instance's gold patch and an empty patch; list where the judge can't be trusted "
            "(exit 1 if any).",
        ),
        network: bool = typer.Option(
            False, "--network", help="Tests may use the network (otherwise needing it is an error verdict)."
        ),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file or key.path=value (bench.*, environment.*)."
        ),
    ) -> None:
        """Apply each prediction's patch in a fresh workspace, run the tests, and report what resolved."""
        from rich.console import Console
        from rich.markup import escape

        from wren.bench.config import BenchWrenConfig
        from wren.bench.datasets import load_instances, select_instances
        from wren.bench.evaluate import evaluate, judge_config, load_predictions, validate_dataset
        from wren.config.assemble import assemble_config
        from wren.exceptions import ConfigError

        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {workers}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"--timeout must be more than 0 seconds, not {timeout:g}")
        cfg = options.apply_workspace_options(
            assemble_config(config, env_kind=env, schema=BenchWrenConfig),
            repos=repos,
            image=image,
            image_template=image_template,
        )
        bench = cfg.bench
        if validate == bool(predictions):
            raise ConfigError("give either --predictions PREDS or --validate (which makes its own)")
        instances = select_instances(load_instances(dataset, split), filter_re=filter_re)
        eval_config = judge_config(
            cfg, workers=workers, timeout=timeout or bench.eval_timeout, network=network
        )
        console = Console(stderr=True)

        def done(instance_id: str, report: dict) -> None:
            # User-facing text is not markup: an install hint names the `[bench]` extra.
            detail = f" ({escape(report['error'])})" if report.get("error") else ""
            console.print(f"  {escape(instance_id)}: [bold]{escape(report['outcome'])}[/bold]{detail}")

        if validate:
            console.print(
                f"validating {len(instances)} instances (gold and empty patches), {workers} worker(s)"
            )
            result = validate_dataset(instances, eval_config, output, on_done=done)
            for row in result["untrusted"]:
                console.print(f"[bold]untrusted[/bold] {escape(row['instance_id'])}: {escape(row['reason'])}")
            for instance_id, row in result["instances"].items():
                for problem in row["labels"]:
                    console.print(f"[bold]labels[/bold] {escape(instance_id)}: {escape(problem)}")
            console.print(trust_table_view(result["per_repo"]))
            console.print(
                f"{len(result['untrusted'])} of {len(instances)} instances can't be trusted; report: {output}"
            )
            raise typer.Exit(1 if result["untrusted"] else 0)
        preds = load_predictions(predictions)
        if filter_re:
            selected = {inst["instance_id"] for inst in instances}
            preds = {i: p for i, p in preds.items() if i in selected}
        todo = [i for i in preds if i in {inst["instance_id"] for inst in instances}]
        console.print(f"evaluating {len(todo)} predictions with {workers} worker(s)")
        summary = evaluate(instances, preds, eval_config, output, on_done=done)
        console.print(
            f"resolved {summary['resolved_instances']}/{summary['submitted_instances']}, "
            f"unresolved {summary['unresolved_instances']}, patch failed {summary['patch_failed_instances']}, "
            f"errors {summary['error_instances']}; report: {escape(str(output))}"
        )
        for level, row in summary.get("per_hint_level", {}).items():
            console.print(
                f"  {level}: resolved {row['resolved']}/{row['total']} ({row['resolved_rate']:.0%})"
            )
