"""Command-line options: those several commands share, declared once so that their flags and help read
the same everywhere, and which of them the user gave.

Every command's optional settings default to None (or an empty list). A command that also reads
settings from YAML or `-c key=value` merges only what `given` returns on top of them, so a default
spelled on a command-line option never overrides the user's config; the defaults live in the config
models alone.
"""

from __future__ import annotations

from typing import Any

import typer

MODEL = typer.Option(None, "-m", "--model", help="Model name (LiteLLM name or catalog entry).")
SLM = typer.Option(None, "--slm", help="An SLM provider or catalog entry by name.")
CONFIG = typer.Option([], "-c", "--config", help="YAML file, built-in name, or key.path=value.")
CONFIG_FORMAT = typer.Option(
    "auto", "--config-format", help="auto (mini-swe-agent files recognised by their keys), wren, or mini."
)
ENV = typer.Option(None, "--env", help="Environment kind: local, sandbox, docker, podman, apptainer.")
MCTS_K = typer.Option(3, "--k", help="Actions sampled per MCTS expansion (with --search).")

# The commands that run instances of a dataset in workspaces (batch, eval, learn demos).
DATASET = typer.Option(
    ..., "--dataset", "-d", help="JSON/JSONL/Parquet file, or lite|verified|full|lite-dev."
)
SPLIT = typer.Option("", "--split", help="Split of a named dataset.")
FILTER = typer.Option("", "--filter", help="Regex on instance_id.")
REPOS = typer.Option(None, "--repos", help="Directory of git repos (owner__name or owner+name).")
IMAGE = typer.Option(None, "--image", help="Image for docker/apptainer when --repos is given.")
IMAGE_TEMPLATE = typer.Option(None, "--image-template", help="Image per instance without --repos.")


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave: those that are not None and not an empty list."""
    return {k: v for k, v in options.items() if v is not None and v != []}


def apply_workspace_options(
    cfg: Any, *, repos: str | None = None, image: str | None = None, image_template: str | None = None
) -> Any:
    """`cfg` (a BenchWrenConfig) with the workspace options that were given set on it."""
    if repos:
        cfg.bench.workspace.repos = repos
    if image_template:
        cfg.bench.workspace.image_template = image_template
    if image:
        cfg.environment["image"] = image
    return cfg


def config_data(specs: list[str]) -> dict:
    """YAML files and key.path=value items merged into one dict (no built-in base, no environment)."""
    from wren.config.loader import load_config_dict

    return load_config_dict(specs, base=(), environ={})
