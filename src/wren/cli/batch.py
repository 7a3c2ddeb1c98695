"""`wren batch`: run the agent over a dataset with many workers, resumably."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def batch(
        dataset: str = typer.Option(
            ..., "--dataset", "-d", help="JSON/JSONL/Parquet file, or lite|verified|full|lite-dev."
        ),
        output: str = typer.Option(
            ..., "-o", "--output", help="Output directory (preds.json, one folder per instance)."
        ),
        split: str = typer.Option("", "--split", help="Split of a named dataset."),
        slice_spec: str = typer.Option(
            "", "--slice", help="A:B, :B, A: or N (the first N), after filter and shuffle."
        ),
        filter_re: str = typer.Option("", "--filter", help="Regex on instance_id."),
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
        model: str = typer.Option(None, "-m", "--model", help="Model name (LiteLLM name or catalog entry)."),
        slm: str = typer.Option(None, "--slm", help="An SLM provider or catalog entry by name."),
        gateway: str = typer.Option(
            None, "--gateway", help="Send model requests through this Wren gateway (its /v1 URL)."
        ),
        env: str = typer.Option(
            None, "--env", help="Environment kind: local, sandbox, docker, podman, apptainer."
        ),
        repos: str = typer.Option(
            None, "--repos", help="Directory of git repos (owner__name or owner+name)."
        ),
        image: str = typer.Option(None, "--image", help="Image for docker/apptainer when --repos is given."),
        image_template: str = typer.Option(
            None, "--image-template", help="Image per instance without --repos."
        ),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file, built-in name, or key.path=value."
        ),
    ) -> None:
        """Run the agent on every selected instance; preds.json is updated as each one finishes."""
        from wren.bench.batch import BatchRunner
        from wren.bench.config import BenchWrenConfig
        from wren.bench.datasets import load_instances, select_instances
        from wren.bench.progress import BatchProgress
        from wren.config.assemble import assemble_config

        specs = list(config)
        if gateway:
            specs.append(f"model.api_base={gateway}")
        cfg = assemble_config(specs, model=model, slm=slm, env_kind=env, schema=BenchWrenConfig)
        if repos:
            cfg.bench.workspace.repos = repos
        if image_template:
            cfg.bench.workspace.image_template = image_template
        if image:
            cfg.environment["image"] = image
        instances = select_instances(
            load_instances(dataset, split), slice_spec=slice_spec, filter_re=filter_re, shuffle=shuffle
        )
        progress = BatchProgress(len(instances))
        runner = BatchRunner(
            cfg,
            output,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            redo_existing=redo_existing,
            progress=progress,
        )
        with progress:
            summary = runner.run(instances)
        from rich.markup import escape

        console = progress.console
        console.print(
            f"{summary['ran']} run, {summary['skipped_existing']} already done; exit statuses: "
            + ", ".join(f"{escape(k)} {v}" for k, v in summary["exit_statuses"].items())
            + f"; predictions in {escape(output)}/preds.json"
        )
        if summary["interrupted"]:
            console.print("interrupted: finished instances are saved; run the same command again to resume")
            raise typer.Exit(130)
