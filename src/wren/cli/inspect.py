"""`wren inspect PATH`: browse saved runs (a trajectory file or a directory of runs)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        path: str = typer.Argument(
            ".", help="A trajectory file (*.traj.json, trajectory.jsonl) or a directory of runs."
        ),
        filter_query: str = typer.Option(
            "", "--filter", "-f", help='Show only matching runs: words, status:X, id:X, model:X, text:"X".'
        ),
        list_only: bool = typer.Option(False, "--list", help="Print the run list and exit (no TUI)."),
    ) -> None:
        """Browse runs: exit status, cost and steps; filter, search, step through messages, see the diff."""
        from pathlib import Path

        from wren.exceptions import ConfigError
        from wren.trajectory import TrajectoryError, find_runs

        tree_path = Path(path)
        if (tree_path / "tree.json").is_file() or tree_path.name == "tree.json":
            _print_tree(tree_path)
            if list_only or tree_path.name == "tree.json":
                return
        from wren.ui.runs import filter_runs, load_runs

        try:
            runs = filter_runs(load_runs(find_runs(path)), filter_query)
        except TrajectoryError as e:
            raise ConfigError(str(e)) from None
        if list_only:
            _print_runs(runs)
            return
        if not runs:
            raise ConfigError(f"no run under {path} matches {filter_query!r}")
        from wren.ui.inspector import InspectorApp

        InspectorApp(runs).run()


def _print_runs(runs: list) -> None:
    from rich.table import Table
    from rich.text import Text

    from wren.cli.display import console
    from wren.ui.inspector import run_cells

    table = Table(box=None, pad_edge=False)
    for column in ("run", "exit status", "steps", "cost", "model", "path"):
        table.add_column(column, justify="right" if column in ("steps", "cost") else "left")
    for run in runs:
        table.add_row(*(Text(str(cell)) for cell in run_cells(run, str(run.path))))
    console.print(table)
    submitted = sum(1 for r in runs if r.exit_status == "Submitted")
    console.print(f"{len(runs)} runs, {submitted} submitted, ${sum(r.cost for r in runs):.4f}")


def _print_tree(path) -> None:
    from rich.markup import escape

    from wren.cli.display import console
    from wren.exceptions import ConfigError
    from wren.search.tree import ThoughtTree, TreeError, render_tree

    try:
        tree, meta = ThoughtTree.load(path)
    except TreeError as e:
        raise ConfigError(str(e)) from None
    console.print(escape(render_tree(tree, meta)))
