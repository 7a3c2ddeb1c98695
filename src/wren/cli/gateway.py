"""`wren gateway`: the program-aware inference gateway, and `wren gateway sim` (simulated server, workload)."""

from __future__ import annotations

import signal

import typer

# Options of more than one gateway command.
_HOST = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1).")
_TIME_SCALE = typer.Option(None, "--time-scale", help="Simulated seconds per wall second (default 1).")


def _capacities(specs: list[str]) -> dict[str, int]:
    """`32768` (every backend) or `URL=32768` (one backend)."""
    from wren.exceptions import ConfigError

    out: dict[str, int] = {}
    for spec in specs:
        url, sep, tokens = spec.rpartition("=")
        key = url.strip().rstrip("/").removesuffix("/v1") if sep else "*"
        try:
            out[key] = int(tokens)
        except ValueError:
            raise ConfigError(f"--capacity {spec!r}: expected TOKENS or URL=TOKENS") from None
    return out


def _range(text: str, name: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    try:
        return (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        raise typer.BadParameter(f"{name} must be MIN:MAX, got {text!r}") from None


def _stopped(signum: int | None) -> None:
    """A server that a signal stopped ends the command as the signal would (exit 128 + its number)."""
    if signum is not None:
        from wren.stop_signals import STOP_SIGNALS

        raise STOP_SIGNALS[signum](f"stopped by {signal.Signals(signum).name}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Program-aware inference gateway: an OpenAI-compatible proxy that keeps agent runs' KV caches warm.",
        invoke_without_command=True,
    )
    app.add_typer(group, name="gateway")

    @group.callback()
    def gateway(
        ctx: typer.Context,
        backends: list[str] = typer.Option(
            [], "--backends", "-b", help="Backend URL(s), comma-separated or repeated."
        ),
        port: int = typer.Option(None, "--port", "-p", help="Port to listen on (default 8100)."),
        host: str = _HOST,
        policy: str = typer.Option(
            None,
            "--policy",
            help="program (default) | program-ttl | program-fcfs | program-las | program-ttl-fcfs | "
            "program-ttl-las | round-robin | least-loaded | dotted.path.Class",
        ),
        capacity: list[str] = typer.Option(
            [], "--capacity", help="KV tokens of backends that do not report it: TOKENS or URL=TOKENS."
        ),
        api_key: str | None = typer.Option(
            None, "--api-key", envvar="WREN_GATEWAY_API_KEY", help="Require this key from clients."
        ),
        backend_api_key: str | None = typer.Option(
            None, "--backend-api-key", envvar="WREN_GATEWAY_BACKEND_API_KEY", help="Key sent to backends."
        ),
        forward_header: list[str] = typer.Option(
            [], "--forward-header", help="Client header copied to backends (default: authorization)."
        ),
        lease: float = typer.Option(
            None, "--lease", help="Release programs idle for this many seconds (default 600)."
        ),
        max_pause: float | None = typer.Option(
            None,
            "--max-pause",
            help="Tail bound: a program paused this many seconds (default 100) gets room made for it by "
            "pausing programs that have run longer.",
        ),
        min_run: float | None = typer.Option(
            None,
            "--min-run",
            help="A resumed program runs at least this many seconds (default 60) before it makes room for an "
            "overdue one.",
        ),
        max_queue: float | None = typer.Option(
            None,
            "--max-queue",
            help="A request held this many seconds (default 300) is answered 503 with Retry-After.",
        ),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="YAML file with gateway settings, or key=value."
        ),
        log_level: str = typer.Option("INFO", "--log-level", help="Logging level."),
        record: str | None = typer.Option(
            None,
            "--record",
            help="Write every request per program (prompts, completions, token ids, logprobs) to DIR.",
        ),
    ) -> None:
        """Run the gateway: `wren gateway --backends URL[,URL...] [--port P] [--policy NAME]`."""
        if ctx.invoked_subcommand is not None:
            return
        import logging

        from wren.cli.options import given
        from wren.config.loader import deep_merge, parse_override, read_yaml
        from wren.gateway.app import serve
        from wren.gateway.config import load_gateway_config

        data: dict = {}
        for spec in config:
            if "=" in spec:
                data = deep_merge(data, parse_override(spec))
            else:
                loaded = read_yaml(spec)
                data = deep_merge(data, loaded.get("gateway", loaded))
        urls = [u for spec in backends for u in spec.split(",") if u.strip()]
        cli = given(
            port=port,
            host=host,
            policy=policy,
            lease_seconds=lease,
            backends=urls,
            capacity_tokens=_capacities(capacity) if capacity else None,
            api_key=api_key or None,
            backend_api_key=backend_api_key or None,
            forward_headers=forward_header,
            record_dir=record,
            max_pause_seconds=max_pause,
            min_run_seconds=min_run,
            max_queue_seconds=max_queue,
        )
        if "backends" not in cli and "backends" not in data:
            raise typer.BadParameter("give at least one backend with --backends URL[,URL...]")
        cfg = load_gateway_config(deep_merge(data, cli))
        logging.getLogger("wren.gateway").setLevel(log_level.upper())
        logging.getLogger("wren").setLevel(log_level.upper())

        def ready(bound: int) -> None:
            typer.echo(
                f"wren gateway listening on http://{cfg.host}:{bound}/v1 ({cfg.policy}; backends: {', '.join(cfg.backends)})"
            )

        _stopped(serve(cfg, ready=ready))

    sim = typer.Typer(help="Simulated inference server and agent workload generator.", no_args_is_help=True)
    group.add_typer(sim, name="sim")

    @sim.command("serve")
    def sim_serve(
        port: int = typer.Option(None, "--port", "-p", help="Port to listen on (default 8000)."),
        host: str = _HOST,
        capacity: int = typer.Option(None, "--capacity", help="KV cache size in tokens (default 65536)."),
        block_size: int = typer.Option(None, "--block-size", help="Tokens per KV block (default 16)."),
        chars_per_token: int = typer.Option(
            None, "--chars-per-token", help="Characters per simulated token (default 4)."
        ),
        time_scale: float = _TIME_SCALE,
        seed: int = typer.Option(None, "--seed", help="Seed of the output text (default 0)."),
        model: str = typer.Option(None, "--model", help="Model name served (default sim-model)."),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="key=value for any SimConfig field (e.g. prefill_ms_per_token=0.1)."
        ),
    ) -> None:
        """Serve a simulated OpenAI-compatible inference server with a KV-cache model."""
        from wren.cli.options import given
        from wren.config.loader import merge_overrides, validate
        from wren.gateway.sim import SimConfig, serve_sim

        data = merge_overrides(config)
        data |= given(
            port=port,
            host=host,
            capacity_tokens=capacity,
            block_size=block_size,
            chars_per_token=chars_per_token,
            time_scale=time_scale,
            seed=seed,
            model=model,
        )
        cfg = validate(SimConfig, data, where="sim")

        def ready(bound: int) -> None:
            typer.echo(
                f"wren sim listening on http://{cfg.host}:{bound}/v1 ({cfg.capacity_tokens} KV tokens, x{cfg.time_scale:g})"
            )

        _stopped(serve_sim(cfg, ready=ready))

    @sim.command("workload")
    def sim_workload(
        url: str = typer.Option(..., "--url", help="OpenAI base URL (gateway or server /v1)."),
        programs: int = typer.Option(None, "--programs", "-n", help="Programs to run (default 128)."),
        concurrency: int | None = typer.Option(
            None, "--concurrency", help="Programs at once (default: all)."
        ),
        duration: float | None = typer.Option(
            None, "--duration", help="Simulated seconds to run (default: to the end)."
        ),
        seed: int = typer.Option(None, "--seed", help="Seed of the workload (default 0)."),
        time_scale: float = _TIME_SCALE,
        chars_per_token: int = typer.Option(None, "--chars-per-token", help="(default 4)"),
        steps: str = typer.Option(None, "--steps", help="MIN:MAX steps per program (default 10:40)."),
        model: str = typer.Option(None, "--model", help="Model name sent (default sim-model)."),
        stream: bool = typer.Option(None, "--stream/--no-stream", help="Send streaming requests."),
        config: list[str] = typer.Option(
            [], "-c", "--config", help="key=value for any WorkloadConfig field."
        ),
    ) -> None:
        """Replay agent programs against an endpoint and print steps per minute (JSON)."""
        import json

        from wren.cli.options import given
        from wren.config.loader import merge_overrides, validate
        from wren.gateway.workload import WorkloadConfig, run_workload

        data = merge_overrides(config)
        data |= given(
            url=url,
            programs=programs,
            concurrency=concurrency,
            duration_seconds=duration,
            seed=seed,
            time_scale=time_scale,
            chars_per_token=chars_per_token,
            steps=_range(steps, "--steps") if steps is not None else None,
            model=model,
            stream=stream,
        )
        cfg = validate(WorkloadConfig, data, where="workload")
        result = run_workload(cfg)
        typer.echo(json.dumps(result.summary(), indent=2))
