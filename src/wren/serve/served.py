"""A GGUF served by llama.cpp's own server, in this process (xllamacpp), for rollouts and evaluation.

The server listens on 127.0.0.1 with the OpenAI-compatible API, so the agents reach it the way
they reach any server. Gemma GGUFs without a chat template get llama.cpp's built-in Gemma one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from wren.serve.gguf_meta import read_metadata

SERVED_NAME = "wren-learn"


def chat_template_for(path: str | Path) -> str:
    """'' when the GGUF carries a chat template; else a built-in llama.cpp template by architecture."""
    meta = read_metadata(path)
    if "tokenizer.chat_template" in meta:
        return ""
    arch = meta.get("general.architecture", (0, "", None))[1]
    return "gemma" if str(arch).startswith("gemma") else ""


@contextlib.contextmanager
def served(
    path: str | Path, *, n_ctx: int = 4096, parallel: int = 1, threads: int = 0, lora: list[str] = ()
) -> Iterator[str]:
    """Serve the GGUF at `path` (with adapter GGUFs over it) on a free port; yields the base URL
    (http://127.0.0.1:PORT/v1). `n_ctx` is per parallel sequence."""
    import xllamacpp

    from wren.serve.llamacpp import server_params

    params = server_params(
        str(path),
        0,  # the server picks a free port
        n_ctx=n_ctx,
        slots=parallel,
        alias=SERVED_NAME,
        threads=threads or None,
        chat_template=chat_template_for(path) or None,
        lora=lora,
    )
    params.warmup = False
    server = xllamacpp.Server(params)  # returns once the model is loaded and the port listens
    try:
        yield server.listening_address.rstrip("/") + "/v1"
    finally:
        del server
