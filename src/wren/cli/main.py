"""Entry point of the `wren` command.

Each command module exposes `register(app)` and imports its heavy dependencies inside the
command functions, so `wren --help` stays fast.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys

import typer

COMMAND_MODULES = [
    "run",
    "models",
    "serve",
    "replay",
    "gateway",
    "batch",
    "evaluate",
    "synth",
    "inspect",
    "learn",
    "config",
    "quickstart",
    "docker",
]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="wren",
        help="Run software-engineering agents on small language models, at benchmark scale.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"wren.cli.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    from wren.exceptions import ConfigError, ModelNotFound, RunStopped
    from wren.stop_signals import exit_code, signals_raise

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = build_app()
    try:
        # SIGTERM and SIGHUP unwind every command like Ctrl-C: runs end their processes and
        # containers, write their trajectories and release their programs before wren exits.
        with signals_raise():
            app(args=argv, prog_name="wren", standalone_mode=True)
    except (ConfigError, ModelNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except RunStopped as e:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is sys.stderr:
                    print(f"wren: {e}", file=stream)
                stream.flush()
            except (OSError, ValueError):
                # After SIGHUP the terminal may be gone: without this, the flush at exit would fail
                # and turn the exit status into 120.
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        sys.exit(exit_code(e))


if __name__ == "__main__":
    main()
