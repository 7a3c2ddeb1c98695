"""`wren serve`: the embedded local SLM over an OpenAI-compatible API, in the foreground."""

from __future__ import annotations

import os

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
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
    ) -> None:
        """Serve a local model (OpenAI-compatible, at http://HOST:PORT/v1)."""
        from wren.serve.embedded import default_model_path, server_argv

        argv = server_argv(
            model or default_model_path(),
            port,
            host=host,
            n_ctx=n_ctx,
            engine=engine,
            slots=slots,
            chat_template=chat_template,
            lora=lora,
        )
        typer.echo(f"serving at http://{host}:{port}/v1 : {' '.join(argv)}", err=True)
        os.execv(argv[0], argv)
