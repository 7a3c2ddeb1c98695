"""`wren models list | check`: the SLM providers and the catalog, and their health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from wren.cli import options


def models_table(rows: list[tuple[str, str, Any, str]]) -> Any:
    """Names in one column; model, where it is served, needed configs and notes stacked in the other.

    Two columns fit an 80-column terminal: nothing is cut, long values fold onto the next line.
    """
    from rich.markup import escape
    from rich.table import Table

    width = max((len(name) for name, *_ in rows), default=4)
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
    table.add_column("name", no_wrap=True, min_width=width, style="bold")
    table.add_column("model, where it is served, notes", overflow="fold")
    for name, kind, choice, notes in rows:
        api_base = choice.model_at_default().get("api_base") or "-"
        served = f"{api_base} (embedded)" if choice.embedded else api_base
        details = [choice.model.get("name") or "(no name)", served]
        if choice.config:
            details.append("config: " + ", ".join(choice.config))
        if choice.lora:
            details.append("lora: " + ", ".join(Path(path).name for path in choice.lora))
        if notes:
            details.append(notes)
        # Names, URLs and notes are the user's text, not markup.
        table.add_row(f"{escape(name)}\n[dim]{kind}[/dim]", escape("\n".join(details)))
        table.add_row("", "")
    return table


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="SLM providers and the model catalog.", no_args_is_help=True)
    app.add_typer(group, name="models")

    @group.command("list")
    def list_models(
        config: list[str] = options.CONFIG,
    ) -> None:
        """Show SLM providers (from config) and catalog entries: model, where it is served, adapters,
        notes (which entry is the default, which are not installed)."""
        from wren.cli.display import console
        from wren.config.loader import load_config_dict
        from wren.models.catalog import default_model, load_catalog, provider_choice

        providers = load_config_dict(config).get("slm_providers") or {}
        rows = [(name, "provider", provider_choice(name, cfg), "") for name, cfg in sorted(providers.items())]
        default = default_model()
        for name, entry in sorted(load_catalog().items()):
            notes = [entry.description]
            if name == default:
                notes.append("default: used when no model is named")
            notes += [
                f"unavailable: the adapter {Path(p).name} is not installed" for p in entry.missing_adapters()
            ]
            rows.append((name, "catalog", entry.choice(installed=False), "\n".join(filter(None, notes))))
        console.print(models_table(rows))

    @group.command("check")
    def check(
        names: list[str] = typer.Argument(
            None, help="Providers or catalog entries (default: all providers)."
        ),
        config: list[str] = options.CONFIG,
        timeout: float = typer.Option(15.0, help="Seconds per request."),
    ) -> None:
        """Ping each model (/v1/models and a one-token completion); exit 1 if any is down."""
        from wren.cli.display import print_checks
        from wren.config.loader import load_config_dict
        from wren.models.catalog import resolve_slm
        from wren.models.health import check_models

        data = load_config_dict(config)
        providers = data.get("slm_providers") or {}
        names = list(names or providers)
        if not names:
            model = data.get("model") or {}
            if not model.get("name"):
                raise typer.BadParameter("no providers configured and no model named; pass NAME or -c FILE")
            targets = {model["name"]: model}
        else:
            targets = {name: resolve_slm(name, providers) for name in names}
        results = check_models(targets, timeout=timeout)
        print_checks(results)
        if not all(r.ok for r in results):
            raise typer.Exit(1)
