"""`wren batch`: run the agent over a dataset with many workers, resumably.

With no model named, the batch uses the embedded SLM exactly as `wren run` does: one server for all
workers, with a parallel slot per worker. The exit status is 0 when every instance ended with an
agent outcome and 1 when any ended in an infrastructure failure (one line per kind, and a hint).
"""

from __future__ import annotations

from typing import Any

import typer

from wren.cli import options


def print_failures(console: Any, summary: dict[str, Any], *, api_base: str | None, output: str) -> bool:
    """One line per kind of infrastructure failure and a hint for the most common; True if any."""
    from wren.bench.outcomes import hint

    groups = summary["failures"]
    if not groups:
        return False
    failed = sum(len(g.instance_ids) for g in groups)
    console.print(
        f"[bold red]{failed} of {summary['instances']} instances failed for reasons outside the task:[/]",
        highlight=False,
    )
    for group in groups:
        console.print(f"  {group.line(console.width - 2)}", highlight=False, markup=False)
    console.print(
        f"hint: {hint(groups[0], api_base=api_base, output_dir=output)}", highlight=False, markup=False
    )
    return True


def register(app: typer.Typer) -> None:
    @app.command()
    def batch(
        dataset: str = options.DATASET,
        output: str = typer.Option(
            ..., "-o", "--output", help="Output directory (preds.json, one folder per instance)."
        ),
        split: str = options.SPLIT,
        slice_spec: str = typer.Option(
            "", "--slice", help="A:B, :B, A: or N (the first N), after filter and shuffle."
        ),
        filter_re: str = options.FILTER,
        shuffle: bool = typer.Option(False, "--shuffle", help="Shuffle instances (seed 42)."),
        redo_existing: bool = typer.Option(
            False, "--redo-existing", help="Run instances already in preds.json again."
        ),
        workers: int = typer.Option(1, "--workers", "-w", help="Instances run at once."),
        executor: str = typer.Option(
            "threads", "--executor", help="threads, or ray (local Ray or --ray-address)."
        ),
        ray_address: str = typer.Option(
            None, "--ray-address", help="Address of a Ray cluster (default: local Ray)."
        ),
        model: str = options.MODEL,
        slm: str = options.SLM,
        gateway: str = typer.Option(
            None, "--gateway", help="Send model requests through this Wren gateway (its /v1 URL)."
        ),
        env: str = options.ENV,
        repos: str = options.REPOS,
        image: str = options.IMAGE,
        image_template: str = options.IMAGE_TEMPLATE,
        config: list[str] = options.CONFIG,
        search: str = typer.Option(
            None, "--search", help="Search per instance: greedy, best-of-n or mcts (see docs/search.md)."
        ),
        budget: int = typer.Option(30, "--budget", help="Model calls per instance (with --search)."),
        judge: str = typer.Option(
            "",
            "--judge",
            help="One check command scoring every instance's finished runs (with --search; "
            "default: each instance's own FAIL_TO_PASS/PASS_TO_PASS tests, as wren eval runs them).",
        ),
        score: str = typer.Option(
            "judge",
            "--score",
            help="What ranks finished runs (with --search): judge, value (needs --value) "
            "or submitted (1 for a submission, no tests run).",
        ),
        width: int = options.MCTS_K,
        value: str = typer.Option("", "--value", help="Value model directory (with --search)."),
        config_format: str = options.CONFIG_FORMAT,
    ) -> None:
        """Run the agent on every selected instance; preds.json is updated as each one finishes.

        Exit 0 when every instance ended with an agent outcome, 1 when any failed for reasons outside
        the task (model unreachable, model or environment error).
        """
        from wren.bench.batch import BatchRunner
        from wren.bench.config import BenchWrenConfig
        from wren.bench.datasets import load_instances, select_instances
        from wren.bench.progress import BatchProgress
        from wren.config.assemble import assemble_config
        from wren.serve.embedded import ensure_server

        specs = list(config)
        if gateway:
            specs.append(f"model.api_base={gateway}")
        cfg = assemble_config(
            specs,
            model=model,
            slm=slm,
            env_kind=env,
            embedded=lambda port, **kw: ensure_server(port, slots=workers, **kw),
            schema=BenchWrenConfig,
            config_format=config_format,
        )
        options.apply_workspace_options(cfg, repos=repos, image=image, image_template=image_template)
        instances = select_instances(
            load_instances(dataset, split), slice_spec=slice_spec, filter_re=filter_re, shuffle=shuffle
        )
        search_runner = None
        if search is not None:
            from wren.search.runner import batch_search_runner, search_from_options

            search_config = search_from_options(search, budget, width, score)
            search_runner = batch_search_runner(search_config, judge, value, cfg)
        progress = BatchProgress(len(instances))
        runner = BatchRunner(
            cfg,
            output,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            redo_existing=redo_existing,
            progress=progress,
            runner=search_runner,
        )
        with progress:
            summary = runner.run(instances)
        from wren.bench.progress import finished_line

        console = progress.console
        console.print(finished_line(summary))
        if summary["interrupted"]:
            console.print("interrupted: finished instances are saved; run the same command again to resume")
            raise typer.Exit(130)
        if print_failures(console, summary, api_base=cfg.model.api_base, output=output):
            raise typer.Exit(1)
