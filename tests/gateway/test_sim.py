"""The simulated inference server (KV cache, prefix caching, preemption, metrics) and the workload."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.gateway.conftest import chat, metric
from wren.gateway.kvcache import KVCache
from wren.gateway.workload import WorkloadConfig, program_spec, run_workload


def test_kvcache_prefix_reuse_and_lru_eviction():
    cache = KVCache(num_blocks=4, block_size=16)
    a = cache.allocate(2)
    cache.register(a[0], 101)
    cache.register(a[1], 102)
    cache.free(a)
    assert cache.used == 0 and len(cache.evictable) == 2 and cache.empty == 2
    assert cache.cached_prefix([101, 102, 103]) == 2
    taken = cache.take([101])
    assert cache.used == 1 and cache.cached_prefix([101, 102]) == 2
    # Three new blocks: two empty ones, then the least recently used cached one (102) is evicted.
    b = cache.allocate(3)
    assert b is not None and cache.evictions == 1 and cache.cached_prefix([101, 102]) == 1
    assert cache.allocate(1) is None  # all four in use
    cache.free(taken + b)
    assert cache.used == 0


def test_sim_is_deterministic_and_caches_prefixes(sim):
    s1 = sim(time_scale=200.0, seed=7)
    s2 = sim(time_scale=200.0, seed=7)
    s3 = sim(time_scale=200.0, seed=8)
    messages = [{"role": "system", "content": "s" * 800}, {"role": "user", "content": "do it"}]
    r1 = chat(s1.url, messages=messages, max_tokens=12).json()
    r2 = chat(s2.url, messages=messages, max_tokens=12).json()
    r3 = chat(s3.url, messages=messages, max_tokens=12).json()
    text = r1["choices"][0]["message"]["content"]
    assert text == r2["choices"][0]["message"]["content"] != r3["choices"][0]["message"]["content"]
    assert r1["usage"]["completion_tokens"] == 12 and len(text) == 12 * 4
    assert r1["usage"]["prompt_tokens"] == len("<|system|>" + "s" * 800 + "\n<|user|>do it\n") // 4 + 1
    # The next step of the same conversation reuses the cached prefix, the reply included.
    follow = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": "more"}]
    again = chat(s1.url, messages=follow, max_tokens=4).json()
    cached = again["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= (r1["usage"]["prompt_tokens"] + 12) // 16 * 16 - 16
    assert metric(s1.url.removesuffix("/v1"), "vllm:prefix_cache_hits_total") == cached


def test_sim_time_scale_and_cost_model(sim):
    # 100 decode steps of at least 8 simulated ms: 0.8 s simulated, 0.08 s at x10.
    fast = sim(time_scale=10.0, iteration_ms=8.0)
    t0 = time.monotonic()
    chat(fast.url, max_tokens=100)
    elapsed = time.monotonic() - t0
    assert 0.07 < elapsed < 5.0
    busy = metric(fast.url.removesuffix("/v1"), "wren_sim_busy_seconds_total")
    assert 0.8 <= busy < 1.0


def test_sim_preempts_when_the_cache_is_full(sim):
    # Real time, so that the three requests overlap even when threads start late on a busy machine.
    s = sim(capacity_tokens=1024, time_scale=1.0)
    results = []

    def one(i: int) -> None:
        r = chat(
            s.url, messages=[{"role": "user", "content": f"{i}" + "q" * 1600}], max_tokens=300, timeout=60
        )
        results.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200, 200, 200]
    base = s.url.removesuffix("/v1")
    assert metric(base, "vllm:num_preemptions_total") > 0
    assert metric(base, "vllm:cache_config_info") == 1
    assert metric(base, "vllm:num_requests_running") == 0
    # Recomputation after preemption shows as more prompt tokens computed than were sent.
    assert metric(base, "wren_sim_computed_prompt_tokens_total") > metric(base, "vllm:prompt_tokens_total")


def test_sim_rejects_what_cannot_fit(sim):
    s = sim(capacity_tokens=256)
    r = chat(s.url, messages=[{"role": "user", "content": "x" * 2000}], max_tokens=10)
    assert r.status_code == 400 and "maximum context length" in r.json()["error"]["message"]
    assert httpx.post(s.url + "/chat/completions", content=b"{").status_code == 400


def test_workload_programs_depend_only_on_the_seed():
    cfg = WorkloadConfig(url="http://unused/v1", seed=3)
    assert program_spec(cfg, 5) == program_spec(cfg, 5)
    assert program_spec(cfg, 5) != program_spec(cfg.model_copy(update={"seed": 4}), 5)
    spec = program_spec(cfg, 0)
    assert cfg.steps[0] <= spec.steps <= cfg.steps[1]
    assert all(cfg.completion_tokens[0] <= c <= cfg.completion_tokens[1] for c in spec.completions)


@pytest.mark.parametrize("where, stream", [("all", False), ("header", False), ("extra_body", True)])
def test_workload_through_the_gateway_releases_its_programs(gateway, sim, where, stream):
    s = sim(time_scale=100.0, capacity_tokens=200_000, chars_per_token=2)
    g = gateway([s.url])
    cfg = WorkloadConfig(
        url=g.url,
        programs=6,
        concurrency=3,
        seed=1,
        time_scale=100.0,
        chars_per_token=2,
        steps=(2, 4),
        task_tokens=(100, 200),
        system_prompt_tokens=100,
        program_id_in=where,
        stream=stream,
    )
    result = run_workload(cfg)
    expected_steps = sum(program_spec(cfg, i).steps for i in range(6))
    assert result.errors == 0, result.error_messages
    assert result.programs_finished == 6 and result.steps == expected_steps
    assert result.cached_tokens > 0  # later steps hit the prefix cache
    assert httpx.get(g.base + "/programs").json()["count"] == 0
    assert metric(g, "wren_gateway_releases_total", reason="client") == 6


def test_workload_sends_program_ids_everywhere_and_releases_without_a_gateway(scripted_server):
    # Not a Wren gateway (its /health says nothing of one): ids and releases go out all the same.
    backend = scripted_server(["reply"])
    cfg = WorkloadConfig(
        url=backend.url,
        programs=2,
        seed=5,
        time_scale=1000.0,
        steps=(2, 2),
        task_tokens=(10, 20),
        system_prompt_tokens=10,
    )
    result = run_workload(cfg)
    assert result.errors == 0 and result.programs_finished == 2, result.error_messages
    calls = [r for r in backend.requests if r["path"].endswith("/chat/completions")]
    assert len(calls) == 4
    for r in calls:
        pid = r["headers"]["X-Program-Id"]
        assert r["body"]["program_id"] == pid and r["body"]["extra_body"] == {"program_id": pid}
    releases = [r["body"] for r in backend.requests if r["path"] == "/programs/release"]
    assert sorted(b["program_id"] for b in releases) == ["wl5-0", "wl5-1"]
