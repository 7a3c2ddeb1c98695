"""`wren learn` commands that train and write models: convert, sft, dpo, value, rl, gguf."""

from __future__ import annotations

import typer

from wren.cli import options


def register(learn: typer.Typer) -> None:
    learn.command("convert")(convert_command)
    learn.command("sft")(sft_command)
    learn.command("dpo")(dpo_command)
    learn.command("value")(value_command)
    learn.command("rl")(rl_command)
    learn.command("gguf")(gguf_command)


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
    from wren.learn.train.finetune import TrainConfig, train, train_summary

    values = options.config_data(config) | {"model": model, "data": data, "output": output, "method": method}
    if max_steps:
        values["max_steps"] = max_steps
    log = train(validate(TrainConfig, values, where=f"learn {method}"))
    typer.echo(train_summary(log, output), err=True)


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


def value_command(
    model: str = typer.Option(..., "--model", help="Training directory (from `wren learn convert`)."),
    data: str = typer.Option(..., "--data", help="value.jsonl from `wren learn export`."),
    output: str = typer.Option(..., "-o", "--output", help="Output directory (adapter, head, calibration)."),
    config: list[str] = typer.Option(
        [], "-c", "--config", help="YAML file or key=value (epochs, lr, lora.r, holdout, bins, ...)."
    ),
) -> None:
    """Train the value model (LoRA + scalar head) on value records; writes its calibration."""
    from wren.config.loader import validate
    from wren.learn.data.export import read_jsonl
    from wren.learn.train.rl.value import ValueConfig, train_value, value_summary

    values = options.config_data(config) | {"model": model, "output": output}
    result = train_value(read_jsonl(data), validate(ValueConfig, values, where="learn value"))
    typer.echo(value_summary(result), err=True)


def rl_command(
    runs: list[str] = typer.Argument(..., help="Run directories with judged episodes (several per task)."),
    model: str = typer.Option(..., "--model", help="Training directory of the policy's base model."),
    output: str = typer.Option(..., "-o", "--output", help="Adapter directory; run again to continue it."),
    dataset: str = typer.Option("", "--dataset", "-d", help="The runs' tasks (for rewards that need them)."),
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
    from wren.learn.train.rl.iteration import RLIterationConfig, iteration_summary, rl_iteration, rl_records

    if method not in ("grpo", "ppo"):
        raise ConfigError(f"--method must be grpo or ppo, not {method!r}")
    data = options.config_data(config) | {"model": model, "output": output, "method": method}
    if value:
        data["value"] = value
    cfg = validate(RLIterationConfig, data, where="learn rl")
    episodes = [e for run in runs for e in load_judged_episodes(run, dataset=dataset or None)]
    log = rl_iteration(rl_records(episodes, cfg.rewards), cfg)
    typer.echo(iteration_summary(log, output), err=True)


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
