"""Decode tokens/s of the embedded SLM with and without constrained output, side by side.

Starts the bundled Gemma-3-270M under llama.cpp (xllamacpp) on a free port and sends the slm
config's opening prompt (system, demonstrations, a task) with no constraint, with the full
THOUGHT + bash grammar, and with the fence-only grammar, at temperature 0 and at a sampling
temperature. Figures are the server's own `timings.predicted_per_second`.

    python benchmarks/slm_decode.py [--rounds 3] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.slm_common import embedded_server  # noqa: E402

TASKS = [
    "Create a file named notes.txt containing the word hello.",
    "Print the current date.",
    "Count the lines of README.md.",
]


def opening_messages(task: str) -> list[dict]:
    from wren.agents.config import AgentConfig, template_environment
    from wren.config.loader import load_config_dict

    agent = AgentConfig(**load_config_dict([], base=("default", "slm"))["agent"])
    jinja = template_environment()
    return [
        {"role": "system", "content": jinja.from_string(agent.system_template).render()},
        *({"role": d["role"], "content": d["content"]} for d in agent.demonstrations),
        {"role": "user", "content": jinja.from_string(agent.instance_template).render(task=task)},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    from wren.models.constrain import constraint_fields

    cells = {
        "none": {},
        **{f"grammar-{f}": constraint_fields("grammar", f, tools=False) for f in ("full", "fence")},
    }
    with embedded_server() as api_base, httpx.Client(timeout=600) as client:
        for temperature in (0.0, 0.7):
            print(f"temperature {temperature}:")
            rates: dict[str, list[float]] = {name: [] for name in cells}
            for round_ in range(args.rounds):
                for task in TASKS:
                    for name, fields in cells.items():
                        body = {
                            "model": "m", "messages": opening_messages(task), "max_tokens": args.max_tokens,
                            "temperature": temperature, "seed": round_, "stop": ["<end_of_turn>"], **fields,
                        }  # fmt: skip
                        timings = client.post(api_base + "/chat/completions", json=body).json()["timings"]
                        rates[name].append(timings["predicted_n"] / (timings["predicted_ms"] / 1000))
            base = statistics.median(rates["none"])
            for name, values in rates.items():
                median = statistics.median(values)
                print(
                    f"  {name:14s} {median:7.1f} tokens/s (median of {len(values)})  ratio to none {median / base:.2f}"
                )


if __name__ == "__main__":
    main()
