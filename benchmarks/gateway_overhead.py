"""Overhead of the gateway against a fast backend: direct vs through the gateway, side by side.

A fixed-reply aiohttp backend (a subprocess) answers chat completions instantly, plain or streamed
(ten SSE events, usage when asked). `wrk` (or, without it, a Python load generator in its own
process) drives it directly and through `wren gateway` (`program` policy) at 1, 32 and 128
concurrent connections, each request carrying one of N program ids (N = connections). Reported:
requests/s and p50/p99 latency, the gateway/direct throughput ratio and the added latency.

    python benchmarks/gateway_overhead.py [--duration 5] [--repeats 1] [--connections 1,32,128]

Targets: <= 1 ms added p50 and <= 2 ms added p99 at 1 connection; >= 0.4x direct
throughput at 128 connections. All processes share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

BODY = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant that writes shell commands."},
        {
            "role": "user",
            "content": "List the files in the current directory, then show the first lines of README.md.",
        },
    ],
    "max_tokens": 64,
}

WRK_SCRIPT = """
local counter = 0
local programs = tonumber(os.getenv("BENCH_PROGRAMS") or "1")
local body = os.getenv("BENCH_BODY")
request = function()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json", ["X-Program-Id"] = "bench-" .. (counter % programs)}
  return wrk.format("POST", nil, headers, body)
end
"""


def backend_main(port: int) -> None:
    """The fixed-reply backend (run in its own process)."""
    import asyncio

    from aiohttp import web

    reply = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ls && head README.md"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 42, "completion_tokens": 8, "total_tokens": 50},
    }
    plain = json.dumps(reply).encode()
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "bench-model"}
    events = [
        b"data: "
        + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": w}}]}).encode()
        + b"\n\n"
        for w in ["ls", " &&", " head", " README", ".md", " #", " list", " and", " show"]
    ]
    events.append(
        b"data: "
        + json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode()
        + b"\n\n"
    )
    usage_event = b"data: " + json.dumps({**chunk, "choices": [], "usage": reply["usage"]}).encode() + b"\n\n"

    async def chat(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=plain, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await resp.prepare(request)
            for event in events:
                await resp.write(event)
            if (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(usage_event)
            await resp.write(b"data: [DONE]\n\n")
        except ConnectionError:
            pass  # the load generator closed its connections at the end of a run
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    from wren.gateway.serving import new_event_loop

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop, backlog=2048)


def loadgen_main(url: str, connections: int, duration: float, body: str, out: str) -> None:
    """A Python load generator (when wrk is missing), in its own process."""
    import asyncio

    import aiohttp

    from wren.gateway.serving import new_event_loop

    latencies: list[float] = []

    async def worker(session: aiohttp.ClientSession, k: int, end: float) -> None:
        headers = {"Content-Type": "application/json", "X-Program-Id": f"bench-{k}"}
        while time.monotonic() < end:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - t0)

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            end = time.monotonic() + duration
            await asyncio.gather(*(worker(session, k, end) for k in range(connections)))

    loop = new_event_loop()
    loop.run_until_complete(main())
    latencies.sort()
    Path(out).write_text(
        json.dumps(
            {
                "rps": len(latencies) / duration,
                "p50": latencies[len(latencies) // 2] if latencies else 0,
                "p99": latencies[int(len(latencies) * 0.99)] if latencies else 0,
            }
        )
    )


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(text: str) -> dict[str, float]:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": latency("50"),
        "p99": latency("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def measure(
    url: str, conns: int, duration: float, body: str, wrk: str | None, script: Path, pids: list[int]
) -> dict:
    """Throughput and latency, plus the CPU microseconds per request each of `pids` spent."""
    before = [cpu_seconds(p) for p in pids]
    result = _load(url, conns, duration, body, wrk, script)
    after = [cpu_seconds(p) for p in pids]
    n = result["rps"] * duration
    for k, (a, b) in enumerate(zip(before, after, strict=True)):
        result[f"cpu{k}"] = (b - a) / n * 1e6 if n else float("nan")
    return result


def _load(url: str, connections: int, duration: float, body: str, wrk: str | None, script: Path) -> dict:
    if wrk:
        env = dict(os.environ, BENCH_PROGRAMS=str(connections), BENCH_BODY=body)
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, env=env, timeout=duration + 60,
        )  # fmt: skip
        return parse_wrk(out.stdout)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            [PY, __file__, "--loadgen", url, str(connections), str(duration), body, f.name],
            check=True,
            timeout=duration + 60,
        )
        return json.loads(Path(f.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats (median reported)")
    parser.add_argument("--connections", default="1,32,128")
    parser.add_argument("--policy", default="program")
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python load generator even if wrk is installed"
    )
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--loadgen", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        backend_main(args.serve_backend)
        return
    if args.loadgen:
        url, conns, duration, body, out = args.loadgen
        loadgen_main(url, int(conns), float(duration), body, out)
        return

    wrk = None if args.no_wrk else shutil.which("wrk")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        try:
            bport, gport = free_port(), free_port()
            procs.append(subprocess.Popen([PY, __file__, "--serve-backend", str(bport)], cwd=ROOT))
            wait_http(f"http://127.0.0.1:{bport}/health")
            procs.append(
                subprocess.Popen(
                    [PY, "-m", "wren.cli.main", "gateway", "--backends", f"http://127.0.0.1:{bport}", "--port", str(gport),
                     "--policy", args.policy, "--log-level", "WARNING"],
                    cwd=ROOT,
                )
            )  # fmt: skip
            wait_http(f"http://127.0.0.1:{gport}/health")
            direct = f"http://127.0.0.1:{bport}/v1/chat/completions"
            gateway = f"http://127.0.0.1:{gport}/v1/chat/completions"
            print(
                f"load generator: {'wrk' if wrk else 'python (aiohttp)'}; {os.cpu_count()} cores shared by all processes"
            )
            print(
                f"{'mode':7s} {'conns':>5s} | {'direct rps':>10s} {'p50':>8s} {'p99':>8s} | {'gateway rps':>11s} {'p50':>8s} "
                f"{'p99':>8s} | {'ratio':>5s} {'+p50':>8s} {'+p99':>8s} | CPU us/req: backend, gateway"
            )
            summary = {}
            for stream in (False, True):
                body = json.dumps({**BODY, "stream": True} if stream else BODY)
                mode = "stream" if stream else "plain"
                for conns in [int(c) for c in args.connections.split(",")]:
                    pids = [procs[0].pid, procs[1].pid]
                    measure(gateway, conns, 1.0, body, wrk, script, pids)  # warm up connections and programs
                    runs = {"direct": [], "gateway": []}
                    for _ in range(args.repeats):
                        runs["direct"].append(measure(direct, conns, args.duration, body, wrk, script, pids))
                        runs["gateway"].append(
                            measure(gateway, conns, args.duration, body, wrk, script, pids)
                        )
                    keys = ("rps", "p50", "p99", "cpu0", "cpu1")
                    d = {k: statistics.median(r[k] for r in runs["direct"]) for k in keys}
                    g = {k: statistics.median(r[k] for r in runs["gateway"]) for k in keys}
                    ratio = g["rps"] / d["rps"] if d["rps"] else 0.0
                    summary[f"{mode}-{conns}"] = {"direct": d, "gateway": g, "ratio": ratio}
                    print(
                        f"{mode:7s} {conns:5d} | {d['rps']:10.0f} {d['p50'] * 1e3:7.2f}ms {d['p99'] * 1e3:7.2f}ms | "
                        f"{g['rps']:11.0f} {g['p50'] * 1e3:7.2f}ms {g['p99'] * 1e3:7.2f}ms | {ratio:5.2f} "
                        f"{(g['p50'] - d['p50']) * 1e3:+7.2f}ms {(g['p99'] - d['p99']) * 1e3:+7.2f}ms | "
                        f"{d['cpu0']:.0f}, {g['cpu1']:.0f}",
                        flush=True,
                    )
            with urllib.request.urlopen(f"http://127.0.0.1:{gport}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            total = re.search(r"^wren_gateway_added_latency_seconds_sum ([\d.e+-]+)$", text, re.M)
            count = re.search(r"^wren_gateway_added_latency_seconds_count ([\d.e+-]+)$", text, re.M)
            if total and count and float(count.group(1)):
                print(
                    f"gateway's own processing per request (its metric): {float(total.group(1)) / float(count.group(1)) * 1e6:.0f} us"
                )
            print("targets: +p50 <= 1 ms and +p99 <= 2 ms at 1 connection; ratio >= 0.4 at 128 connections")
            print("(CPU us/req does not depend on other load on the machine; throughput does)")
            print(json.dumps(summary))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)


if __name__ == "__main__":
    main()
