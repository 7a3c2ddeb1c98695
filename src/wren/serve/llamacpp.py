"""llama.cpp's own HTTP server, run in this process through the `xllamacpp` wheel (nothing compiles).

`python -m wren.serve.llamacpp --model FILE --port P` loads the model, starts the server, prints one
`listening on URL` line (the handshake a launcher waits for), and serves until SIGTERM or SIGINT,
or, with `--idle-timeout S`, until it has been idle for S seconds (wren.serve.idle). On the way out
it removes its state file (wren.serve.state), so `wren serve status` does not list it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError

READY_LINE = "listening on"


def server_params(
    model_path: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    n_ctx: int = 8192,
    slots: int = 1,
    alias: str | None = None,
    threads: int | None = None,
    chat_template: str | None = None,
    lora: list[str] = (),
) -> Any:
    """xllamacpp's CommonParams for one model (and LoRA adapter GGUFs applied over it at scale 1);
    `n_ctx` is per slot, so the server holds n_ctx * slots."""
    try:
        import xllamacpp
    except ImportError as e:
        raise ConfigError(
            "the embedded SLM needs xllamacpp (a prebuilt wheel): pip install 'wren-agent[local]'"
        ) from e
    if slots < 1:
        raise ConfigError(f"slots must be at least 1, got {slots}")
    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.hostnames = [host]
    params.port = port
    params.n_parallel = slots
    params.n_ctx = n_ctx * slots
    # Agent prompts grow by appending: reusing the cached prefix is what makes a step cheap.
    params.cache_prompt = True
    # Sliding-window models (Gemma 3) otherwise keep only the window's last tokens in their local
    # layers' cache, and a prompt that changes earlier than that (history elision) is processed again
    # in full: measured, a change 2,200 tokens from the end of a 3,291-token prompt reused 1 token.
    params.swa_full = True
    params.endpoint_metrics = True
    params.endpoint_props = True
    if alias:
        params.model_alias = {alias}
    if chat_template:
        params.chat_template = bundled_template(chat_template)
    for path in lora:
        if not Path(path).is_file():
            raise ConfigError(
                f"LoRA adapter {path} does not exist (write one with `wren learn gguf --adapter DIR`)"
            )
    params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(path), 1.0) for path in lora]
    # Half the cores: ggml's threads wait for each other at every layer, and one that the OS has put
    # aside stalls the rest. Measured on a loaded 2-core machine: 2 threads 0.9 tokens/s, 1 thread 9-10.
    n_threads = threads or max(1, (os.cpu_count() or 2) // 2)
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    return params


def bundled_template(name_or_text: str) -> str:
    """The Jinja text of a template shipped in wren/serve/templates (by name), else the text itself."""
    path = Path(__file__).parent / "templates" / f"{name_or_text}.j2"
    return path.read_text() if "{" not in name_or_text and path.is_file() else name_or_text


def serve(params: Any, *, idle_timeout: float = 0.0) -> None:
    """Start the server and block until a termination signal arrives or it has been idle
    `idle_timeout` seconds (0 = never)."""
    import xllamacpp

    from wren.serve.idle import start_watch
    from wren.serve.state import remove_state

    stop = threading.Event()
    signalled = threading.Event()

    def on_signal(*_: object) -> None:
        signalled.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    server = xllamacpp.Server(params)
    print(f"{READY_LINE} {server.listening_address}", flush=True)
    try:
        host = params.hostnames[0] if params.hostnames else "127.0.0.1"
        start_watch(idle_timeout, f"http://{host}:{params.port}", params.port, stop)
        stop.wait()
        if not signalled.is_set():
            print(f"idle for {idle_timeout:g} s: stopping", flush=True)
    finally:
        remove_state(params.port, os.getpid())
    del server  # its destructor stops the main loop and joins the HTTP threads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wren.serve.llamacpp", description=__doc__)
    parser.add_argument("--model", required=True, help="GGUF file to serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--n-ctx", type=int, default=8192, help="context tokens per slot")
    parser.add_argument("--slots", type=int, default=1, help="sequences served in parallel")
    parser.add_argument("--alias", default=None, help="model name the API reports")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--idle-timeout", type=float, default=0.0, help="stop after this many idle seconds (0 = never)"
    )
    parser.add_argument("--lora", action="append", default=[], help="adapter GGUF applied over the model")
    parser.add_argument(
        "--chat-template", default=None, help="a template in wren/serve/templates (e.g. gemma) or Jinja text"
    )
    args = parser.parse_args(argv)
    try:
        params = server_params(
            args.model,
            args.port,
            host=args.host,
            n_ctx=args.n_ctx,
            slots=args.slots,
            alias=args.alias,
            threads=args.threads,
            chat_template=args.chat_template,
            lora=args.lora,
        )
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    serve(params, idle_timeout=args.idle_timeout)


if __name__ == "__main__":
    main()
