"""Reading backends' metrics pages: capacity and load, and the correction they drive."""

from __future__ import annotations

from wren.gateway.backends import Backend, capacity_from_vllm_metrics, parse_prometheus

VLLM_PAGE = """\
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",gpu_memory_utilization="0.9",num_cpu_blocks="None",num_gpu_blocks="2048"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 0.0
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 7.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 12.0
"""


def test_parse_vllm_page():
    samples = parse_prometheus(VLLM_PAGE)
    assert capacity_from_vllm_metrics(samples) == 16 * 2048
    assert samples["vllm:num_requests_running"][0] == ({"engine": "0", "model_name": "m"}, 3.0)
    assert samples["vllm:request_success_total"][0][0]["finished_reason"] == "stop"
    assert (
        capacity_from_vllm_metrics(parse_prometheus('vllm:cache_config_info{block_size="16"} 1.0\n')) is None
    )


def test_newer_vllm_reports_tokens_directly():
    # For hybrid models (sliding-window layers) tokens that fit are not blocks x block size.
    page = 'vllm:cache_config_info{block_size="128",kv_cache_size_tokens="8670",num_gpu_blocks="290"} 1.0\n'
    assert capacity_from_vllm_metrics(parse_prometheus(page)) == 8670


def test_preemptions_and_full_queues_lower_the_correction_and_quiet_restores_it():
    b = Backend.create("http://127.0.0.1:1", capacity=1000, connect_timeout=1, read_timeout=1)
    b._observe(parse_prometheus(VLLM_PAGE))
    assert b.correction == 1.0 and b.kv_usage == 0.5 and b.preemptions == 7
    b._observe(parse_prometheus(VLLM_PAGE.replace("} 7.0", "} 9.0")))
    assert b.correction < 1.0 and b.preemptions == 9
    lowered = b.correction
    full = (
        VLLM_PAGE.replace("} 7.0", "} 9.0")
        .replace("} 0.5", "} 0.99")
        .replace('model_name="m"} 0.0', 'model_name="m"} 4.0')
    )
    b._observe(parse_prometheus(full))
    assert b.correction < lowered
    for _ in range(50):
        b._observe(parse_prometheus(VLLM_PAGE.replace("} 7.0", "} 9.0")))
    assert b.correction == 1.0
    assert b.usable_capacity(0.9) == 900
