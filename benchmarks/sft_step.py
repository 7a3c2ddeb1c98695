"""Seconds per SFT step and peak memory: `wren learn sft` against TRL's own output layer, side by side.

TRL's fused output layer scores every position off Triton devices; `wren learn sft` scores only
the trained ones (`trained_positions_only`). Each variant trains the same records for the same
steps from the same training directory in its own process (peak RSS is per process):

- `trl`: TRL as it is (every position scored, gradient checkpointing on: TRL's default);
- `trained+gc`: trained positions only, gradient checkpointing on;
- `wren`: trained positions only, gradient checkpointing off (`wren learn sft`'s default).

    python benchmarks/sft_step.py --model TRAINING_DIR [--steps 4] [--tokens 1024]

TRAINING_DIR comes from `wren learn convert` (the bundled Gemma-3-270M by default).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = ("trl", "trained+gc", "wren")


def records(n: int) -> list[dict]:
    """Agent-run-shaped conversations: a task, then test output after each of four short replies."""
    observation = "Output (return code 1):\n" + "\n".join(
        f"tests/test_core.py:{40 + i}: in test_case_{i}\n    assert frobnicate({i}) == {2 * i}\nE   AssertionError"
        for i in range(14)
    )
    out = []
    for k in range(n):
        messages = [
            {"role": "system", "content": "You solve tasks in a Linux shell."},
            {"role": "user", "content": f"Task: frobnicate({k}) returns the wrong value."},
        ]
        for step in range(4):
            messages.append(
                {
                    "role": "assistant",
                    "content": f"THOUGHT: step {step}: I run the failing tests with: python -m pytest -x\n"
                    "```bash\npython -m pytest tests/test_core.py -x 2>&1 | tail -n 40\n```",
                }
            )
            messages.append({"role": "user", "content": observation})
        out.append({"messages": messages[:-1]})
    return out


def one(variant: str, model: str, steps: int, tokens: int, work: Path) -> dict:
    import wren.learn.train.finetune as train_module
    from wren.learn.data.export import write_jsonl

    if variant == "trl":
        train_module.trained_positions_only = contextlib.nullcontext  # the peer: TRL unchanged
    data = work / "sft.jsonl"
    write_jsonl(data, records(steps))
    log = train_module.train(
        train_module.TrainConfig(
            model=model,
            data=str(data),
            output=str(work / variant),
            max_steps=steps,
            max_length=tokens,
            save_steps=10_000,
            merge=False,
            gradient_checkpointing=variant != "wren",
        )
    )
    times = [e["train_runtime"] for e in log["log_history"] if "train_runtime" in e]
    return {
        "variant": variant,
        "steps": log["steps"],
        "seconds_per_step": float(times[-1]) / log["steps"] if times else log["seconds"] / log["steps"],
        "first_loss": log["loss"][0],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Training directory (wren learn convert).")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.model, args.steps, args.tokens, Path(args.work))))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="wren-sft-step-") as work:
        for variant in VARIANTS:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", variant, "--model", args.model, "--work", work,
                 "--steps", str(args.steps), "--tokens", str(args.tokens)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in results.values():
        print(
            f"{r['variant']:12s} {r['seconds_per_step']:6.1f} s/step  peak RSS {r['peak_rss_gib']:5.1f} GiB"
            f"  first loss {r['first_loss']:.4f}"
        )
    peer = results["trl"]["seconds_per_step"]
    print(f"wren / trl seconds per step: {results['wren']['seconds_per_step'] / peer:.2f}x")


if __name__ == "__main__":
    main()
