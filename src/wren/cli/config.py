"""`wren config show | convert`: the config Wren will run with, and mini-swe-agent configs in Wren's form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from wren.cli import options


def dump_yaml(data: Any) -> str:
    """`data` as YAML, with multi-line strings (templates) as literal blocks so they read as written."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1000)


def _commented(notes: list[str], header: str) -> str:
    if not notes:
        return ""
    lines = [f"# {header}"] + [f"#   {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _schema(batch: bool) -> type:
    if batch:
        from wren.bench.config import BenchWrenConfig

        return BenchWrenConfig
    from wren.config.schema import InteractiveWrenConfig

    return InteractiveWrenConfig


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The merged config, and mini-swe-agent configs in Wren's form.", no_args_is_help=True
    )
    app.add_typer(group, name="config")

    @group.command("show")
    def show(
        config: list[str] = options.CONFIG,
        config_format: str = options.CONFIG_FORMAT,
        model: str = options.MODEL,
        slm: str = options.SLM,
        env: str = options.ENV,
        batch: bool = typer.Option(False, "--batch", help="The config as `wren batch` reads it."),
    ) -> None:
        """Print the merged config (YAML) that `wren run` (or, with --batch, `wren batch`) runs with."""
        from wren.config.assemble import assemble_config
        from wren.environments import environment_config

        notes: list[str] = []
        cfg = assemble_config(
            config,
            model=model,
            slm=slm,
            env_kind=env,
            schema=_schema(batch),
            config_format=config_format,
            notes=notes,
        )
        environment_config(cfg.environment)  # its keys are checked when a run starts; check them now
        data = cfg.model_dump(mode="json")
        data["model"] = cfg.model.public_dump()  # secrets stay off the screen
        header = "mini-swe-agent keys accepted without a Wren counterpart:"
        typer.echo(_commented(notes, header) + dump_yaml(data), nl=False)

    @group.command("convert")
    def convert(
        file: Path = typer.Argument(..., help="A mini-swe-agent config file, or the name of one it ships."),
        output: Path = typer.Option(
            None, "-o", "--output", help="Write the Wren config here (default: stdout)."
        ),
        batch: bool = typer.Option(False, "--batch", help="Convert for `wren batch` (no interactive keys)."),
    ) -> None:
        """Write a mini-swe-agent config in Wren's form; `wren run -c` on it runs as the original does."""
        from wren.config.loader import deep_merge, read_yaml, validate
        from wren.config.mini import is_mini_config, shipped_config, translate
        from wren.environments import environment_config
        from wren.exceptions import ConfigError

        if not file.is_file():
            file = shipped_config(str(file)) or file
        if not file.is_file():
            raise ConfigError(f"config file not found: {file} (nor a config mini-swe-agent ships)")
        data = read_yaml(file)
        if not is_mini_config(data):
            raise ConfigError(
                f"{file} has no key that only mini-swe-agent configs have; it is read as a Wren config already"
            )
        translation = translate(data, interactive=not batch)
        # The converted file must load: check it the way `wren run -c` will read it.
        merged = validate(_schema(batch), deep_merge(read_yaml("default"), translation.config))
        environment_config(merged.environment)
        header = "mini-swe-agent keys accepted without a Wren counterpart:"
        text = f"# Converted from the mini-swe-agent config {file}.\n"
        text += _commented(translation.notes, header) + dump_yaml(translation.config)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)
            typer.echo(f"wrote {output}", err=True)
