"""`wren learn`: demonstrations, training data, the next-step probe and the closed loop (training
and model formats are in `learn_train`). Each command parses its arguments and calls the library."""

from __future__ import annotations

import typer

from wren.cli import learn_train, options


def register(app: typer.Typer) -> None:
    learn = typer.Typer(
        help="Learn from runs: demonstrations, training data, SFT/DPO training, the closed loop.",
        no_args_is_help=True,
    )
    app.add_typer(learn, name="learn")
    learn.command("demos")(demos_command)
    learn.command("export")(export_command)
    learn_train.register(learn)
    learn.command("probe")(probe_command)
    learn.command("loop")(loop_command)


def _bench_config(config: list[str], env: str | None, repos: str | None):
    from wren.bench.config import BenchWrenConfig
    from wren.config.assemble import assemble_config

    return options.apply_workspace_options(
        assemble_config(config, env_kind=env, schema=BenchWrenConfig), repos=repos
    )


def demos_command(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Tasks with gold patches (JSON/JSONL/Parquet)."),
    output: str = typer.Option(..., "-o", "--output", help="Run directory of the kept demonstrations."),
    repos: str = options.REPOS,
    env: str = options.ENV,
    workers: int = typer.Option(1, "--workers", "-w", help="Instances run and judged at once."),
    filter_re: str = options.FILTER,
    slice_spec: str = typer.Option("", "--slice", help="A:B, :B, A: or N (the first N)."),
    config: list[str] = typer.Option([], "-c", "--config", help="YAML file or key.path=value."),
    checked_edits: bool = typer.Option(
        False, "--checked-edits", help="The fix and the tests in one command (`sed -i ... && TESTS`)."
    ),
    slips: float = typer.Option(
        0.0,
        "--slips",
        help="With --checked-edits: the share of demonstrations that first make a wrong edit, see the "
        "tests fail, undo it and fix.",
    ),
) -> None:
    """Expert runs from gold patches, executed for real and kept only when the judge resolves them."""
    from rich.console import Console

    from wren.bench.datasets import load_instances, select_instances
    from wren.config.loader import validate
    from wren.learn.data.demos import DemoSettings, write_demos

    settings = validate(DemoSettings, {"checked_edits": checked_edits, "slips": slips}, where="learn demos")
    cfg = _bench_config(config, env, repos)
    instances = select_instances(load_instances(dataset), slice_spec=slice_spec, filter_re=filter_re)
    report = write_demos(instances, cfg, output, workers=workers, settings=settings)
    Console(stderr=True).print(
        f"kept {len(report['resolved_ids'])} demonstrations the judge resolved, rejected "
        f"{len(report['rejected_ids'])}, {len(report['no_gold_patch_ids'])} without a gold patch; "
        f"run directory: {output}",
        highlight=False,
    )


def export_command(
    runs: list[str] = typer.Argument(..., help="Run directories (wren batch / learn demos output)."),
    output: str = typer.Option(
        ..., "-o", "--output", help="Directory for sft.jsonl, dpo.jsonl, value.jsonl."
    ),
    dataset: str = typer.Option("", "--dataset", "-d", help="The runs' tasks (for gold patches)."),
    reports: list[str] = typer.Option(
        [], "--report", "-r", help="Eval report per run, in order (default: RUN/report.json if there)."
    ),
    select: str = typer.Option("resolved", "--select", help="SFT episodes: resolved, or reward (weighted)."),
    max_tokens: int = typer.Option(2048, "--max-tokens", help="Longest record; longer runs become windows."),
    tokenizer: str = typer.Option(
        "",
        "--tokenizer",
        help="Counts tokens: a training directory or GGUF file (default: the bundled model's); "
        "'approx' estimates 3.5 characters a token.",
    ),
    config: list[str] = typer.Option(
        [], "-c", "--config", help="YAML file or key=value of the export config."
    ),
) -> None:
    """Write TRL datasets: SFT conversations, DPO pairs and value records."""
    from rich.console import Console

    from wren.config.loader import validate
    from wren.learn.data.export import ExportConfig, export_runs

    data = options.config_data(config) | {"select": select, "max_tokens": max_tokens}
    export_config = validate(ExportConfig, data, where="learn export")
    counts = export_runs(
        runs, output, export_config, reports=reports, dataset=dataset or None, tokenizer=tokenizer
    )
    Console(stderr=True).print(
        f"{counts['episodes']} episodes -> {counts['sft']} SFT records, {counts['dpo']} DPO pairs, "
        f"{counts['value']} value records in {output} (tokens counted by {counts['tokenizer']})",
        highlight=False,
    )


def probe_command(
    demos: str = typer.Argument(..., help="Run directory of demonstrations (`wren learn demos`)."),
    model: str = typer.Option(
        ..., "--model", help="A GGUF to serve here, or the URL of an OpenAI-compatible server (http...)."
    ),
    dataset: str = typer.Option("", "--dataset", "-d", help="The demonstrations' tasks (for the verdicts)."),
    slm: str = typer.Option(
        "gemma-3-270m",
        "--slm",
        help="Entry whose model settings (grammar, reply length) every query uses.",
    ),
    output: str = typer.Option(
        "",
        "-o",
        "--output",
        help="JSONL of every step's reply beside the demonstration's (and OUTPUT.edits.json).",
    ),
    workers: int = typer.Option(4, "--workers", "-w", help="Demonstrations probed at once."),
    n_ctx: int = typer.Option(4096, "--n-ctx", help="Context per sequence of a served GGUF."),
    lora: list[str] = typer.Option(
        [], "--lora", help="Adapter GGUF served over --model (`wren learn gguf --adapter`); repeatable."
    ),
    samples: int = typer.Option(
        0, "--samples", help="Also sample this many replies at each edit step, apply and judge them."
    ),
    temperature: float = typer.Option(0.7, "--temperature", help="Temperature of those samples."),
    repos: str = options.REPOS,
    pairs: str = typer.Option(
        "",
        "--pairs",
        help="Write DPO pairs (dpo.jsonl format) where the reply missed the demonstration's command: "
        "probe training demonstrations with this, never held-out ones.",
    ),
    max_tokens: int = typer.Option(3072, "--max-tokens", help="Longest pair (prompt cut to fit)."),
    config: list[str] = options.CONFIG,
) -> None:
    """The held-out next-step check: a model's greedy reply at every step of demonstrations, by kind and exactly."""
    from wren.bench.config import BenchWrenConfig
    from wren.config.assemble import assemble_config
    from wren.learn.probe import EditCheck
    from wren.learn.probe_run import ProbeOptions, probe_demonstrations, probe_lines

    base = options.apply_workspace_options(
        assemble_config(config, slm=slm, env_kind="local", schema=BenchWrenConfig), repos=repos
    )
    probe = ProbeOptions(
        model=model,
        dataset=dataset,
        workers=workers,
        n_ctx=n_ctx,
        lora=lora,
        edit_check=EditCheck(samples=samples, temperature=temperature),
        output=output,
        pairs=pairs,
        max_tokens=max_tokens,
    )
    result = probe_demonstrations(demos, probe, base)
    if pairs:
        typer.echo(f"{result['pairs']} DPO pairs in {pairs}", err=True)
    typer.echo("\n".join(probe_lines(result, probe.edit_check)), err=True)


def loop_command(
    config: list[str] = typer.Option(
        ...,
        "-c",
        "--config",
        help="The loop's YAML file or a built-in one by name (ladder), then key=value overrides (see docs/learn.md).",
    ),
    overrides: list[str] = typer.Argument(
        None, help="key=value overrides after the config, as `-c key=value` gives them (applied last)."
    ),
) -> None:
    """Synthesize, demonstrate, roll out, train (SFT, DPO), serve and evaluate on held-out repos; resumable."""
    from pathlib import Path

    from wren.config.loader import validate
    from wren.exceptions import ConfigError
    from wren.learn.loop import Loop, LoopConfig
    from wren.learn.loop_config import config_file
    from wren.learn.report import LOOP_REPORT, evaluation_lines

    stray = [item for item in overrides or () if "=" not in item]
    if stray:
        raise ConfigError(f"learn loop: {', '.join(stray)} is not key=value; give config files with -c")
    data = options.config_data([config_file(spec) for spec in config] + list(overrides or ()))
    loop_config = validate(LoopConfig, data, where="learn loop")
    report = Loop(loop_config, log=lambda line: typer.echo(line, err=True)).run()
    for line in evaluation_lines(report):
        typer.echo(line, err=True)
    typer.echo(f"report: {Path(loop_config.work_dir) / LOOP_REPORT} (.html)", err=True)
