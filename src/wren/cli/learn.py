"""`wren learn`: demonstrations, training data, training, and the closed loop."""

from __future__ import annotations

import typer

from wren.cli import options


def _bench_config(config: list[str], env: str | None, repos: str | None):
    from wren.bench.config import BenchWrenConfig
    from wren.config.assemble import assemble_config

    return options.apply_workspace_options(
        assemble_config(config, env_kind=env, schema=BenchWrenConfig), repos=repos
    )


def register(app: typer.Typer) -> None:
    learn = typer.Typer(
        help="Learn from runs: demonstrations, training data, SFT/DPO training, the closed loop.",
        no_args_is_help=True,
    )
    app.add_typer(learn, name="learn")

    @learn.command("demos")
    def demos_command(
        dataset: str = typer.Option(
            ..., "--dataset", "-d", help="Tasks with gold patches (JSON/JSONL/Parquet)."
        ),
        output: str = typer.Option(..., "-o", "--output", help="Run directory of the kept demonstrations."),
        repos: str = options.REPOS,
        env: str = options.ENV,
        workers: int = typer.Option(1, "--workers", "-w", help="Instances run and judged at once."),
        filter_re: str = options.FILTER,
        slice_spec: str = typer.Option("", "--slice", help="A:B, :B, A: or N (the first N)."),
        config: list[str] = typer.Option([], "-c", "--config", help="YAML file or key.path=value."),
    ) -> None:
        """Expert runs from gold patches, executed for real and kept only when the judge resolves them."""
        from rich.console import Console

        from wren.bench.datasets import load_instances, select_instances
        from wren.learn.data.demos import write_demos

        cfg = _bench_config(config, env, repos)
        instances = select_instances(load_instances(dataset), slice_spec=slice_spec, filter_re=filter_re)
        report = write_demos(instances, cfg, output, workers=workers)
        Console(stderr=True).print(
            f"kept {len(report['resolved_ids'])} demonstrations the judge resolved, rejected "
            f"{len(report['rejected_ids'])}, {len(report['no_gold_patch_ids'])} without a gold patch; "
            f"run directory: {output}",
            highlight=False,
        )

    @learn.command("export")
    def export_command(
        runs: list[str] = typer.Argument(..., help="Run directories (wren batch / learn demos output)."),
        output: str = typer.Option(
            ..., "-o", "--output", help="Directory for sft.jsonl, dpo.jsonl, value.jsonl."
        ),
        dataset: str = typer.Option("", "--dataset", "-d", help="The runs' tasks (for gold patches)."),
        reports: list[str] = typer.Option(
            [], "--report", "-r", help="Eval report per run, in order (default: RUN/report.json if there)."
        ),
        select: str = typer.Option(
            "resolved", "--select", help="SFT episodes: resolved, or reward (weighted)."
        ),
        max_tokens: int = typer.Option(
            2048, "--max-tokens", help="Longest record; longer runs become windows."
        ),
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
        from wren.exceptions import ConfigError
        from wren.learn.data.episodes import load_judged_episodes
        from wren.learn.data.export import ExportConfig, export
        from wren.learn.data.windows import approx_tokens

        if reports and len(reports) != len(runs):
            raise ConfigError(
                f"--report was given {len(reports)} times for {len(runs)} runs; give one per run"
            )
        data = _config_data(config) | {"select": select, "max_tokens": max_tokens}
        export_config = validate(ExportConfig, data, where="learn export")
        episodes = []
        for i, run in enumerate(runs):
            report = reports[i] if reports else None
            episodes += load_judged_episodes(run, report=report, dataset=dataset or None)
        # An estimate lets windows outgrow the trainer's max_length, which then cuts trained turns
        # away (session 7): the model's own tokenizer is the default.
        count = approx_tokens
        if tokenizer != "approx":
            from wren.serve.convert import token_counter
            from wren.serve.embedded import default_model_path

            tokenizer = tokenizer or default_model_path()
            count = token_counter(tokenizer)
        counts = export(episodes, output, export_config, count)
        Console(stderr=True).print(
            f"{len(episodes)} episodes -> {counts['sft']} SFT records, {counts['dpo']} DPO pairs, "
            f"{counts['value']} value records in {output} (tokens counted by {tokenizer})",
            highlight=False,
        )

    @learn.command("convert")
    def convert_command(
        model: str = typer.Option("", "--model", help="A GGUF file (default: the bundled Gemma-3-270M)."),
        output: str = typer.Option(..., "-o", "--output", help="Training directory to write."),
    ) -> None:
        """Turn a GGUF model into a transformers training directory (fp32, with a chat template)."""
        from wren.serve.convert import gguf_to_training_dir

        if not model:
            from wren.serve.embedded import default_model_path

            model = default_model_path()
        out = gguf_to_training_dir(model, output)
        typer.echo(f"training directory: {out}", err=True)

    def _train(method: str, model: str, data: str, output: str, max_steps: int, config: list[str]) -> None:
        from wren.config.loader import validate
        from wren.learn.train.finetune import TrainConfig, train

        values = _config_data(config) | {"model": model, "data": data, "output": output, "method": method}
        if max_steps:
            values["max_steps"] = max_steps
        log = train(validate(TrainConfig, values, where=f"learn {method}"))
        resumed = f", resumed from {log['resumed_from']}" if log["resumed_from"] else ""
        first, last = (log["loss"][0], log["loss"][-1]) if log["loss"] else (float("nan"), float("nan"))
        typer.echo(
            f"{method}: {log['steps']} steps in {log['seconds']:.0f} s{resumed}; loss {first:.3f} -> {last:.3f}; "
            f"adapter and model in {output}",
            err=True,
        )

    @learn.command("sft")
    def sft_command(
        model: str = typer.Option(..., "--model", help="Training directory (from `wren learn convert`)."),
        data: str = typer.Option(..., "--data", help="sft.jsonl from `wren learn export`."),
        output: str = typer.Option(..., "-o", "--output", help="Output directory; run again to resume."),
        max_steps: int = typer.Option(0, "--max-steps", help="Optimizer steps (default: one epoch)."),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file or key=value (learning_rate, lora.r, ...)."
        ),
    ) -> None:
        """Supervised fine-tuning with a LoRA (TRL SFTTrainer); loss on trained assistant turns only."""
        _train("sft", model, data, output, max_steps, config)

    @learn.command("dpo")
    def dpo_command(
        model: str = typer.Option(..., "--model", help="Training directory (e.g. the SFT output's model/)."),
        data: str = typer.Option(..., "--data", help="dpo.jsonl from `wren learn export`."),
        output: str = typer.Option(..., "-o", "--output", help="Output directory; run again to resume."),
        max_steps: int = typer.Option(0, "--max-steps", help="Optimizer steps (default: one epoch)."),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file or key=value (beta, learning_rate, ...)."
        ),
    ) -> None:
        """Direct preference optimisation with a LoRA (TRL DPOTrainer)."""
        _train("dpo", model, data, output, max_steps, config)

    @learn.command("value")
    def value_command(
        model: str = typer.Option(..., "--model", help="Training directory (from `wren learn convert`)."),
        data: str = typer.Option(..., "--data", help="value.jsonl from `wren learn export`."),
        output: str = typer.Option(
            ..., "-o", "--output", help="Output directory (adapter, head, calibration)."
        ),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file or key=value (epochs, lr, lora.r, holdout, bins, ...)."
        ),
    ) -> None:
        """Train the value model (LoRA + scalar head) on value records; writes its calibration."""
        from wren.config.loader import validate
        from wren.learn.data.export import read_jsonl
        from wren.learn.train.rl.value import ValueConfig, train_value

        values = _config_data(config) | {"model": model, "output": output}
        result = train_value(read_jsonl(data), validate(ValueConfig, values, where="learn value"))
        cal = result["calibration"]
        typer.echo(
            f"value: loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}; ECE {cal['ece']:.3f} on "
            f"{cal['n']} {cal['on']}; model, calibration.json and reliability.svg in {output}",
            err=True,
        )

    @learn.command("rl")
    def rl_command(
        runs: list[str] = typer.Argument(
            ..., help="Run directories with judged episodes (several per task)."
        ),
        model: str = typer.Option(..., "--model", help="Training directory of the policy's base model."),
        output: str = typer.Option(
            ..., "-o", "--output", help="Adapter directory; run again to continue it."
        ),
        dataset: str = typer.Option(
            "", "--dataset", "-d", help="The runs' tasks (for rewards that need them)."
        ),
        method: str = typer.Option(
            "grpo", "--method", help="grpo (group-relative advantages) or ppo (GAE with --value)."
        ),
        value: str = typer.Option("", "--value", help="Value model directory (wren learn value), for ppo."),
        config: list[str] = typer.Option(
            [],
            "-c",
            "--config",
            help="YAML file or key=value (rl.clip_eps, rl.epochs, rl.kl_coef, rl.lam, rewards...).",
        ),
    ) -> None:
        """One RL iteration: GRPO's group-relative advantages per task, or PPO's GAE per turn with
        the value model; then clipped updates of the LoRA against the collected log-probs."""

        from wren.config.loader import validate
        from wren.exceptions import ConfigError
        from wren.learn.data.episodes import load_judged_episodes
        from wren.learn.train.rl.iteration import RLIterationConfig, rl_iteration, rl_records

        if method not in ("grpo", "ppo"):
            raise ConfigError(f"--method must be grpo or ppo, not {method!r}")
        data = _config_data(config) | {"model": model, "output": output, "method": method}
        if value:
            data["value"] = value
        cfg = validate(RLIterationConfig, data, where="learn rl")
        episodes = []
        for run in runs:
            episodes += load_judged_episodes(run, dataset=dataset or None)
        log = rl_iteration(rl_records(episodes, cfg.rewards), cfg)
        last = log["steps"][-1]
        typer.echo(
            f"rl ({log['method']}): {log['episodes']} episodes in {log['groups']} groups, "
            f"mean reward {log['mean_reward']:.3f}; "
            f"last step ratio deviation {last['ratio_max_deviation']:.3f}, clipped {last['clip_fraction']:.1%}, "
            f"KL {last['kl']:.4f}; adapter in {output}",
            err=True,
        )

    @learn.command("gguf")
    def gguf_command(
        model: str = typer.Option(
            "", "--model", help="Training directory (e.g. an sft/dpo output's model/), written merged."
        ),
        adapter: str = typer.Option(
            "", "--adapter", help="A LoRA adapter directory (an sft/dpo output's adapter/), written alone."
        ),
        output: str = typer.Option(..., "-o", "--output", help="GGUF file to write."),
        precision: str = typer.Option("q8_0", "--precision", help="f32, f16 or q8_0 (merged models)."),
        tokenizer_gguf: str = typer.Option(
            "",
            "--tokenizer-gguf",
            help="GGUF whose tokenizer to copy (default: the one the model came from).",
        ),
        base_model: str = typer.Option(
            "",
            "--base-model",
            help="With --adapter: its base training directory (default: the one it names).",
        ),
    ) -> None:
        """Write a tuned model as GGUF: merged (`wren serve --model FILE`) or an adapter (`--lora FILE`)."""
        from wren.exceptions import ConfigError
        from wren.serve.gguf_export import export_adapter_gguf, export_gguf

        if bool(model) == bool(adapter):
            raise ConfigError(
                "give exactly one of --model DIR (a merged GGUF) and --adapter DIR (an adapter GGUF)"
            )
        if adapter:
            out = export_adapter_gguf(adapter, output, base_model_dir=base_model or None)
            typer.echo(
                f"adapter GGUF: {out} (serve it with: wren serve --model BASE.gguf --lora {out})", err=True
            )
            return
        if precision not in ("f32", "f16", "q8_0"):
            raise ConfigError(f"--precision must be f32, f16 or q8_0, not {precision!r}")
        out = export_gguf(model, output, tokenizer_gguf=tokenizer_gguf, precision=precision)  # type: ignore[arg-type]
        typer.echo(f"GGUF: {out} (serve it with: wren serve --model {out})", err=True)

    @learn.command("probe")
    def probe_command(
        demos: str = typer.Argument(..., help="Run directory of demonstrations (`wren learn demos`)."),
        model: str = typer.Option(
            ..., "--model", help="A GGUF to serve here, or the URL of an OpenAI-compatible server (http...)."
        ),
        dataset: str = typer.Option(
            "", "--dataset", "-d", help="The demonstrations' tasks (for the verdicts)."
        ),
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
        import json
        from pathlib import Path

        from wren.bench.config import BenchWrenConfig
        from wren.config.assemble import assemble_config
        from wren.exceptions import ConfigError
        from wren.learn.data.episodes import load_judged_episodes
        from wren.learn.data.export import write_jsonl
        from wren.learn.probe import EditCheck, probe_config, probe_served

        base = options.apply_workspace_options(
            assemble_config(config, slm=slm, env_kind="local", schema=BenchWrenConfig), repos=repos
        )

        def config_for(api_base: str) -> BenchWrenConfig:
            return base.model_copy(update={"model": base.model.model_copy(update={"api_base": api_base})})

        served_here = not model.startswith(("http://", "https://"))
        if samples and not base.bench.workspace.repos:
            raise ConfigError("--samples judges each sampled edit in a checkout: give --repos DIR")
        if lora and not served_here:
            raise ConfigError("--lora needs --model to be a GGUF served here, not a server's URL")
        check = EditCheck(samples=samples, temperature=temperature)

        episodes = load_judged_episodes(demos, dataset=dataset or None)
        # Only the judge's resolved demonstrations, when it has judged them: the check asks for
        # the steps of a run that worked.
        episodes = [e for e in episodes if e.resolved or e.verdict is None]
        if not served_here:
            result = probe_config(episodes, config_for(model), workers=workers, edit_check=check)
        else:
            result = probe_served(
                model,
                episodes,
                config_for,
                n_ctx=n_ctx,
                workers=workers,
                lora=lora,
                edit_check=check,
            )
        if pairs:
            from wren.learn.data.export import ExportConfig
            from wren.learn.probe import corrective_pairs
            from wren.serve.convert import token_counter
            from wren.serve.embedded import default_model_path

            count = token_counter(default_model_path())
            records = corrective_pairs(episodes, result["items"], ExportConfig(max_tokens=max_tokens), count)
            typer.echo(f"{write_jsonl(pairs, records)} DPO pairs in {pairs}", err=True)
        if output:
            write_jsonl(output, result["items"])
            if "edits" in result:
                edits_file = Path(output).with_suffix(".edits.json")
                edits_file.write_text(json.dumps(result["edits"], indent=2))
        summary = result["summary"]
        lines = [
            f"{result['episodes']} demonstrations, {summary['overall']['n']} steps; same kind / exact command:"
        ]
        lines += [f"  {'all':8s} {summary['overall']['same_kind']:.2f} / {summary['overall']['exact']:.2f}"]
        for kind, rates in summary["by_kind"].items():
            given = ", ".join(f"{k} {n}" for k, n in summary["confusion"][kind].items())
            lines.append(
                f"  {kind:8s} {rates['same_kind']:.2f} / {rates['exact']:.2f}  (n={rates['n']}; replies: {given})"
            )
        if "edits" in result:
            edits = result["edits"]
            lines.append(
                f"edit step, {samples} samples at temperature {temperature}: fixed {edits['fix_rate']:.2f} of "
                f"{edits['tasks']} tasks (pass@{samples}), {edits['sample_fix_rate']:.2f} of samples"
            )
        typer.echo("\n".join(lines), err=True)

    @learn.command("loop")
    def loop_command(
        config: list[str] = typer.Option(
            ..., "-c", "--config", help="The loop's YAML file, then key=value overrides (see docs/learn.md)."
        ),
    ) -> None:
        """Synthesize, demonstrate, roll out, train (SFT, DPO), serve and evaluate on held-out repos; resumable."""
        from pathlib import Path

        from wren.config.loader import validate
        from wren.learn.loop import Loop, LoopConfig
        from wren.learn.report import LOOP_REPORT

        loop_config = validate(LoopConfig, _config_data(config), where="learn loop")
        report = Loop(loop_config, log=lambda line: typer.echo(line, err=True)).run()
        for name, evaluation in report["evaluations"].items():
            summary = evaluation["summary"]
            typer.echo(
                f"{name}: " + ", ".join(f"{k} {v['mean']:.3f} ± {v['ci95']:.3f}" for k, v in summary.items()),
                err=True,
            )
        typer.echo(f"report: {Path(loop_config.work_dir) / LOOP_REPORT} (.html)", err=True)


def _config_data(specs: list[str]) -> dict:
    """YAML files and key.path=value items merged into one dict (no built-in base, no environment)."""
    from wren.config.loader import load_config_dict

    return load_config_dict(specs, base=(), environ={})
