"""`wren models list | check`: the SLM providers and the catalog, and their health."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="SLM providers and the model catalog.", no_args_is_help=True)
    app.add_typer(group, name="models")

    @group.command("list")
    def list_models(
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file, built-in name, or key.path=value."
        ),
    ) -> None:
        """Show SLM providers (from config) and catalog entries."""
        from rich.table import Table
        from rich.text import Text

        from wren.cli.display import console
        from wren.config.loader import load_config_dict
        from wren.models.catalog import load_catalog

        providers = load_config_dict(config).get("slm_providers") or {}
        table = Table("name", "kind", "model", "api_base", "notes")
        rows = [
            (name, "provider", str(cfg.get("name", "")), str(cfg.get("api_base") or "-"), "")
            for name, cfg in sorted(providers.items())
        ]
        for name, entry in sorted(load_catalog().items()):
            cfg = entry.model_config_dict()
            rows.append((name, "catalog", cfg["name"], str(cfg.get("api_base") or "-"), entry.description))
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))  # names and URLs are not markup
        console.print(table)

    @group.command("check")
    def check(
        names: list[str] = typer.Argument(
            None, help="Providers or catalog entries (default: all providers)."
        ),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file, built-in name, or key.path=value."
        ),
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
