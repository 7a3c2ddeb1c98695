"""The engine of the simulated inference server: a KV-cache model of a continuous-batching server.

It works like a continuous-batching server (vLLM v1): each iteration it advances running
requests (one token for those decoding, a chunk of prompt for those prefilling) within a token
budget, then admits waiting requests that fit. Prompts are cut into blocks hashed over their
prefix, so a request reuses the cached blocks of an earlier one with the same prefix; blocks of
finished requests stay cached until evicted (LRU). When a running request needs a block and none
is free, the newest running request is preempted: its blocks are dropped and it is recomputed
later. An iteration costs `iteration_ms + prefill tokens x prefill_ms_per_token + prefill tokens x
their positions x prefill_attention_ms_per_token + decoding requests x decode_ms_per_seq + context
tokens read x attention_ms_per_token` of simulated time; the defaults are roughly an 8B model on one
H100 (weights read each step, GQA KV reads, compute-bound prefill).

The engine does no I/O and never sleeps: `step()` does one iteration and returns its cost, and the
clock it stamps arrivals with is injected. The HTTP server (`sim.py`) paces it against the wall
clock `time_scale` times faster; the fleet simulation (`fleet.py`) runs it in simulated time alone.

Tokens are `chars_per_token` characters of the rendered prompt. Outputs are `max_tokens` tokens
long (default `default_max_tokens`) and their text is derived from the seed and the prompt, so a
run is deterministic given the same requests.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from wren.gateway.kvcache import Block, KVCache


class SimConfig(BaseModel):
    """Shape and speed of the simulated server."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port to listen on (0 picks a free one)."""
    model: str = "sim-model"
    """Model name it serves."""
    capacity_tokens: int = Field(default=65536, ge=1)
    """KV cache size in tokens."""
    block_size: int = Field(default=16, ge=1)
    """Tokens per KV block."""
    chars_per_token: int = Field(default=4, ge=1)
    """Characters of rendered prompt that make one token."""
    max_model_len: int | None = None
    """Longest prompt + output accepted (default: the KV capacity)."""
    max_batched_tokens: int = Field(default=8192, ge=1)
    """Token budget of one iteration (chunked prefill)."""
    max_num_seqs: int = Field(default=256, ge=1)
    """Most requests running at once."""
    iteration_ms: float = Field(default=8.0, ge=0)
    """Fixed cost of one forward step (simulated milliseconds)."""
    prefill_ms_per_token: float = Field(default=0.06, ge=0)
    """Cost of computing one prompt token."""
    decode_ms_per_seq: float = Field(default=0.1, ge=0)
    """Cost per decoding request per step."""
    attention_ms_per_token: float = Field(default=0.00004, ge=0)
    """Cost per context token read by a decoding request per step (KV bandwidth)."""
    prefill_attention_ms_per_token: float = Field(default=0.0000013, ge=0)
    """Extra cost of a prompt token per token before it (attention grows with position)."""
    default_max_tokens: int = Field(default=128, ge=1)
    """Output length when a request gives no max_tokens."""
    time_scale: float = Field(default=1.0, gt=0)
    """Simulated seconds per wall-clock second (30 runs a 30-minute workload in a minute)."""
    seed: int = 0
    """Seed of the output text."""


def render_messages(messages: list[dict]) -> str:
    """The prompt text the simulated tokenizer sees for a chat request."""
    parts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(f"<|{m.get('role', 'user')}|>{content or ''}\n")
    return "".join(parts)


def render_reply(text: str) -> str:
    """How the server's own reply appears in the next prompt of the same conversation."""
    return f"<|assistant|>{text}\n"


def block_hashes(text: str, chars_per_block: int, start: int = 0, prev: int = 0) -> list[int]:
    """Chained hashes of the full blocks of `text` from block `start` on (`prev`: hash before it)."""
    out = []
    full = len(text) // chars_per_block
    for i in range(start, full):
        prev = hash((prev, text[i * chars_per_block : (i + 1) * chars_per_block]))
        out.append(prev)
    return out


class SimRequest:
    """One request inside the engine: its prompt blocks, progress and output."""

    __slots__ = (
        "text",
        "prompt_tokens",
        "hashes",
        "max_output",
        "output",
        "num_computed",
        "blocks",
        "cached_tokens",
        "arrived",
        "finished",
        "new_tokens",
        "event",
        "done",
        "error",
        "cancelled",
        "registered",
        "reply",
    )

    def __init__(self, text: str, prompt_tokens: int, hashes: list[int], max_output: int) -> None:
        self.text = text
        self.prompt_tokens = prompt_tokens
        self.hashes = hashes
        self.max_output = max_output
        self.output = 0
        self.num_computed = 0
        self.blocks: list[Block] = []
        self.cached_tokens = -1  # prefix-cache hit at first admission
        self.arrived = 0.0
        self.finished = 0.0
        self.new_tokens = 0  # produced and not yet sent to a streaming client
        self.event = asyncio.Event()
        self.done = False
        self.error: str | None = None
        self.cancelled = False
        self.registered = 0  # leading blocks whose prefix hash is registered in the cache
        self.reply = ""  # the full output text (decided at submission)

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.output


class SimEngine:
    """The simulated inference engine: `submit` requests, call `step()` while `has_work`."""

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float],
        on_finish: Callable[[SimRequest], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock  # simulated seconds
        self.on_finish = on_finish
        self.cache = KVCache(max(1, config.capacity_tokens // config.block_size), config.block_size)
        self.chars_per_block = config.block_size * config.chars_per_token
        self.waiting: collections.deque[SimRequest] = collections.deque()
        self.running: list[SimRequest] = []
        self.now = 0.0  # simulated seconds at the start of the next iteration
        self.busy = 0.0
        self.prefill_seconds = 0.0  # the part of `busy` spent computing prompts
        self.max_lag = 0.0  # how far the pacing fell behind the wall clock (simulated seconds)
        self.stats = collections.Counter()

    @property
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def sim_time(self) -> float:
        return self.clock()

    def context_limit(self) -> int:
        """Longest prompt + output a request may have."""
        c = self.config
        return min(c.max_model_len or c.capacity_tokens, c.capacity_tokens)

    def tokens_of(self, text: str) -> int:
        return max(1, -(-len(text) // self.config.chars_per_token))

    def submit(self, req: SimRequest) -> None:
        req.arrived = self.sim_time()
        req.reply = self.reply_text(req)
        self.waiting.append(req)
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += req.prompt_tokens

    def cancel(self, req: SimRequest) -> None:
        """The client went away: stop working on the request."""
        if req.done:
            return
        req.cancelled = True
        if req in self.running:
            self.running.remove(req)
        elif req in self.waiting:
            self.waiting.remove(req)
        self.cache.free(req.blocks)
        req.blocks = []
        req.done = True

    def _needed(self, req: SimRequest, n: int) -> int:
        bs = self.config.block_size
        return -(-(req.num_computed + n) // bs) - len(req.blocks)

    def _preempt(self, req: SimRequest) -> None:
        self.cache.free(req.blocks)
        req.blocks = []
        req.num_computed = 0
        req.registered = 0
        self.stats["preemptions"] += 1
        self.waiting.appendleft(req)

    def step(self) -> float:
        """One iteration; returns its simulated cost in seconds."""
        cfg = self.config
        cache = self.cache
        budget = cfg.max_batched_tokens
        scheduled: list[tuple[SimRequest, int]] = []
        preempted = False
        i = 0
        running = self.running
        while i < len(running) and budget > 0:
            req = running[i]
            n = min(req.num_tokens - req.num_computed, budget)
            while True:
                need = self._needed(req, n)
                blocks = cache.allocate(need) if need > 0 else []
                if blocks is not None:
                    req.blocks.extend(blocks)
                    break
                victim = running.pop()
                self._preempt(victim)
                preempted = True
                if victim is req:
                    req = None
                    break
            if req is None:
                break
            scheduled.append((req, n))
            budget -= n
            i += 1
        if not preempted:
            while self.waiting and budget > 0 and len(running) < cfg.max_num_seqs:
                req = self.waiting[0]
                hit_blocks = 0
                if not req.blocks:
                    hit_blocks = cache.cached_prefix(req.hashes)
                    # At least one token is always computed, to produce the next one.
                    while hit_blocks and hit_blocks * cfg.block_size >= req.num_tokens:
                        hit_blocks -= 1
                hit = hit_blocks * cfg.block_size
                n = min(req.num_tokens - hit, budget)
                need = -(-(hit + n) // cfg.block_size) - hit_blocks
                if not cache.available_for(req.hashes[:hit_blocks], need):
                    break
                self.waiting.popleft()
                req.blocks = cache.take(req.hashes[:hit_blocks]) + (cache.allocate(need) or [])
                req.num_computed = hit
                req.registered = hit_blocks
                if req.cached_tokens < 0:
                    req.cached_tokens = hit
                self.stats["prefix_queries"] += req.num_tokens
                self.stats["prefix_hits"] += hit
                running.append(req)
                scheduled.append((req, n))
                budget -= n
        prefill = decode = context = 0
        pairs = 0.0  # prompt tokens x their positions, for the attention part of prefill
        for req, n in scheduled:
            if req.num_computed < req.prompt_tokens or n > 1:
                prefill += n
                pairs += n * (req.num_computed + n / 2)
            else:
                decode += 1
                context += req.num_computed
        cost_ms = (
            cfg.iteration_ms
            + prefill * cfg.prefill_ms_per_token
            + pairs * cfg.prefill_attention_ms_per_token
            + decode * cfg.decode_ms_per_seq
            + context * cfg.attention_ms_per_token
        )
        self.stats["computed_tokens"] += prefill
        prefill_ms = prefill * cfg.prefill_ms_per_token + pairs * cfg.prefill_attention_ms_per_token
        self.prefill_seconds += prefill_ms / 1000.0
        self.stats["steps"] += 1
        finished = []
        for req, n in scheduled:
            req.num_computed += n
            if req.num_computed == req.num_tokens:
                req.output += 1
                req.new_tokens += 1
                self.stats["generation_tokens"] += 1
                if req.output >= req.max_output:
                    finished.append(req)
                else:
                    req.event.set()
            self._register_prompt_blocks(req)
        dt = cost_ms / 1000.0
        end = self.now + dt
        for req in finished:
            self._finish(req, end)
        self.now = end
        self.busy += dt
        return dt

    def _register_prompt_blocks(self, req: SimRequest) -> None:
        full = min(len(req.hashes), req.num_computed // self.config.block_size, len(req.blocks))
        if full > req.registered:
            for k in range(req.registered, full):
                self.cache.register(req.blocks[k], req.hashes[k])
            req.registered = full

    def _finish(self, req: SimRequest, at: float) -> None:
        self.running.remove(req)
        # Cache the reply's blocks as the next prompt of this conversation will contain them.
        cont = req.text + render_reply(req.reply)
        start = len(req.hashes)
        extra = block_hashes(cont, self.chars_per_block, start, req.hashes[-1] if req.hashes else 0)
        for k, h in enumerate(extra, start):
            if k >= len(req.blocks):
                break
            self.cache.register(req.blocks[k], h)
        self.cache.free(req.blocks)
        req.blocks = []
        req.finished = at
        req.done = True
        req.event.set()
        if self.on_finish is not None:
            self.on_finish(req)

    def reply_text(self, req: SimRequest) -> str:
        """The deterministic text of a request's whole output, from the seed and its prompt."""
        digest = hashlib.blake2b(
            f"{self.config.seed}|{req.prompt_tokens}|{req.text[-256:]}".encode(), digest_size=8
        )
        rng = random.Random(digest.digest())
        width = self.config.chars_per_token
        alphabet = "abcdefghijklmnopqrstuvwxyz"
        words = [
            "".join(rng.choices(alphabet, k=width - 1)) + " " if width > 1 else rng.choice(alphabet)
            for _ in range(16)
        ]
        return "".join(words[rng.randrange(16)] for _ in range(req.max_output))

    def metrics_text(self) -> str:
        c = self.config
        s = self.stats
        # Newer vLLM labels every sample with its engine and reports the cache size in tokens.
        label = f'engine="0",model_name="{c.model}"'
        tokens = self.cache.num_blocks * c.block_size
        lines = [
            "# TYPE vllm:cache_config_info gauge",
            f'vllm:cache_config_info{{block_size="{c.block_size}",enable_prefix_caching="True",engine="0",'
            f'kv_cache_size_tokens="{tokens}",num_gpu_blocks="{self.cache.num_blocks}"}} 1.0',
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{label}}} {self.cache.usage()}",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{label}}} {len(self.running)}",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{label}}} {len(self.waiting)}",
            "# TYPE vllm:num_preemptions_total counter",
            f"vllm:num_preemptions_total{{{label}}} {s['preemptions']}",
            "# TYPE vllm:prefix_cache_queries_total counter",
            f"vllm:prefix_cache_queries_total{{{label}}} {s['prefix_queries']}",
            "# TYPE vllm:prefix_cache_hits_total counter",
            f"vllm:prefix_cache_hits_total{{{label}}} {s['prefix_hits']}",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{label}}} {s['prompt_tokens']}",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{label}}} {s['generation_tokens']}",
            "# TYPE wren_sim_computed_prompt_tokens_total counter",
            f"wren_sim_computed_prompt_tokens_total {s['computed_tokens']}",
            "# TYPE wren_sim_requests_total counter",
            f"wren_sim_requests_total {s['requests']}",
            "# TYPE wren_sim_busy_seconds_total counter",
            f"wren_sim_busy_seconds_total {self.busy}",
            "# TYPE wren_sim_prefill_seconds_total counter",
            f"wren_sim_prefill_seconds_total {self.prefill_seconds}",
            "# TYPE wren_sim_time_seconds gauge",
            f"wren_sim_time_seconds {self.sim_time()}",
            "# TYPE wren_sim_max_lag_seconds gauge",
            f"wren_sim_max_lag_seconds {self.max_lag}",
        ]
        return "\n".join(lines) + "\n"
