"""`wren serve`: the embedded local SLM over an OpenAI-compatible API, in the foreground;
`wren serve status` and `wren serve stop` show and end the servers Wren started."""

from __future__ import annotations

import os
import time

import typer

serve_app = typer.Typer(
    help="Serve a local model; `status` shows and `stop` ends the embedded servers.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    model: str = typer.Option(None, "--model", help="A GGUF file (default: the bundled Gemma-3-270M)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    engine: str = typer.Option(
        "llama.cpp",
        "--engine",
        help="llama.cpp (xllamacpp wheel), llama-cpp-python (optional, compiles), or vllm.",
    ),
    n_ctx: int = typer.Option(8192, "--n-ctx", help="Context length in tokens, per slot."),
    slots: int = typer.Option(1, "--slots", help="Sequences served in parallel."),
    chat_template: str = typer.Option(
        None,
        "--chat-template",
        help="A template in wren/serve/templates (e.g. gemma) or Jinja text (default: the GGUF's own; "
        "gemma for the bundled model).",
    ),
    lora: list[str] = typer.Option(
        [],
        "--lora",
        help="An adapter GGUF (`wren learn gguf --adapter`) applied over the model; repeatable.",
    ),
    idle_timeout: float = typer.Option(
        0.0, "--idle-timeout", help="Stop after this many seconds without requests (0 = never; llama.cpp)."
    ),
) -> None:
    """Serve a local model (OpenAI-compatible, at http://HOST:PORT/v1) in the foreground."""
    if ctx.invoked_subcommand is not None:
        return
    from pathlib import Path

    from wren.exceptions import ConfigError
    from wren.serve.embedded import default_model_path, foreign_port_message, server_argv
    from wren.serve.state import ServerState, port_in_use, read_state, write_state

    if idle_timeout < 0:
        raise ConfigError(f"--idle-timeout must be 0 or more, not {idle_timeout:g}")
    path = model or default_model_path()
    running = read_state(port)
    if running is not None:
        raise ConfigError(
            f"Wren's embedded server already serves {Path(running.model).name} on port {port} "
            f"(pid {running.pid}): `wren serve stop --port {port}` ends it"
        )
    if port_in_use(port, host):
        raise ConfigError(foreign_port_message(port))
    argv = server_argv(
        path,
        port,
        host=host,
        n_ctx=n_ctx,
        engine=engine,
        slots=slots,
        chat_template=chat_template,
        lora=lora,
        idle_timeout=idle_timeout if engine == "llama.cpp" else 0.0,
    )
    # execv keeps this pid, so the state file names the server process itself.
    write_state(
        ServerState(
            pid=os.getpid(), port=port, host=host, model=str(path), lora=[str(Path(p).resolve()) for p in lora],
            engine=engine, slots=slots, owner_uid=os.getuid(), idle_timeout=idle_timeout,
        )
    )  # fmt: skip
    typer.echo(f"serving at http://{host}:{port}/v1 : {' '.join(argv)}", err=True)
    os.execv(argv[0], argv)


@serve_app.command("status")
def status(
    port: int = typer.Option(None, "--port", help="Only the server on this port."),
) -> None:
    """Show the embedded servers Wren started (exit 1 when there is none)."""
    from pathlib import Path

    from wren.serve.state import all_states, live_holders, read_state

    states = [s for s in [read_state(port)] if s] if port is not None else all_states()
    if not states:
        typer.echo("no embedded server is running" + (f" on port {port}" if port is not None else ""))
        raise typer.Exit(1)
    for s in states:
        idle = f"stops after {s.idle_timeout:g} s idle" if s.idle_timeout > 0 else "never stops by itself"
        holders = live_holders(s.port)
        adapters = f" + {', '.join(Path(p).name for p in s.lora)}" if s.lora else ""
        typer.echo(
            f"{s.api_base}  pid {s.pid}  {s.engine}  {Path(s.model).name}{adapters}  {s.slots} slot(s)  "
            f"up {_ago(time.time() - s.started)}  {idle}  "
            f"{len(holders)} run(s) using it{': ' + ', '.join(map(str, holders)) if holders else ''}"
        )


@serve_app.command("stop")
def stop(
    port: int = typer.Option(None, "--port", help="Only the server on this port (default: all of them)."),
) -> None:
    """Stop the embedded servers Wren started (exit 1 when there was none)."""
    from wren.serve.embedded import stop_server
    from wren.serve.state import all_states

    ports = [port] if port is not None else [s.port for s in all_states()]
    stopped = [p for p in ports if stop_server(p)]
    for p in stopped:
        typer.echo(f"stopped the embedded server on port {p}")
    if not stopped:
        typer.echo("no embedded server is running" + (f" on port {port}" if port is not None else ""))
        raise typer.Exit(1)


def _ago(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
