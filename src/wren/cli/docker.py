"""`wren docker prune`: remove the containers of runs whose Wren process is gone."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Containers that Wren started.", no_args_is_help=True)
    app.add_typer(group, name="docker")

    @group.command()
    def prune(
        executable: str = typer.Option("docker", "--executable", help="Container CLI: docker or podman."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List the containers; remove nothing."),
    ) -> None:
        """Remove containers labelled by Wren on this machine whose Wren process no longer runs.

        A run removes its container however it ends; this is for runs killed with the engine
        unreachable, or on a machine that went down. Containers of running Wren processes and of
        other machines sharing the engine are left alone.
        """
        from wren.cli.display import console
        from wren.environments.docker import orphan_containers, prune_containers

        names = orphan_containers(executable) if dry_run else prune_containers(executable)
        verb = "would remove" if dry_run else "removed"
        console.print(f"{verb} {len(names)} orphaned container{'s' * (len(names) != 1)}")
        for name in names:
            console.print(f"  {name}")
