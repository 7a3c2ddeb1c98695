"""Seconds per SFT step on edit-window records (the ladder recipe's shape), at several lengths.

An edit window is the system prompt, the task at one hint rung, at most a few earlier steps, the
edit reply and the submit reply; its length is set by the statement and the earlier steps. This
trains `wren learn sft` (its defaults: LoRA r=16 on every linear layer, trained positions only,
no gradient checkpointing, batch 1) for a few steps on records of each length, in one process per
length, and prints seconds per step with the trained share of the tokens.

    python benchmarks/sft_edit_windows.py --model TRAINING_DIR [--steps 6] [--tokens 256 512 1024]

TRAINING_DIR comes from `wren learn convert` (the bundled Gemma-3-270M by default); with
`--convert DIR` the bundled GGUF is converted there first (skipped when DIR holds a model).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

EDIT = (
    "THOUGHT: Line 42 of `toolz/itertoolz.py` is wrong. I fix it by line number with sed.\n"
    "```bash\nsed -i '42c\\        return seq[n:] if n >= 0 else seq' toolz/itertoolz.py\n```"
)
SUBMIT = (
    "THOUGHT: The tests pass. I submit the change.\n```bash\n"
    "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached\n```"
)
FAILURE = "E   AssertionError: assert [1, 2] == [2, 3]\ntests/test_itertoolz.py:{n}: in test_drop_{n}\n"


def record(tokenizer, target: int, k: int) -> dict:
    """A window of about `target` tokens: the statement grows until the rendered record reaches it."""
    from wren.learn.data.tokenize import tokenize_conversation

    lines = []
    while True:
        statement = f"Task {k}: `drop` returns the wrong items.\n" + "".join(lines)
        messages = [
            {
                "role": "system",
                "content": "You are a helpful assistant that can interact with a computer shell.",
            },
            {"role": "user", "content": statement + "Line 42 of `toolz/itertoolz.py` is wrong."},
            {"role": "assistant", "content": EDIT, "train": True},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\n</output>"},
            {"role": "assistant", "content": SUBMIT, "train": True},
        ]
        ids = tokenize_conversation(tokenizer, messages, sys.maxsize)
        if len(ids["input_ids"]) >= target:
            trained = sum(label != -100 for label in ids["labels"])
            return {"messages": messages, "tokens": len(ids["input_ids"]), "trained": trained}
        lines.append(FAILURE.format(n=len(lines)))


def one(model: str, steps: int, tokens: int, work: Path) -> dict:
    import wren.learn.train.finetune as train_module
    from wren.learn.data.export import write_jsonl
    from wren.serve.training_dir import load_tokenizer

    tokenizer = load_tokenizer(model)
    recs = [record(tokenizer, tokens, k) for k in range(steps)]
    data = work / f"sft-{tokens}.jsonl"
    write_jsonl(data, [{"messages": r["messages"]} for r in recs])
    log = train_module.train(
        train_module.TrainConfig(
            model=model, data=str(data), output=str(work / f"out-{tokens}"), max_steps=steps,
            max_length=tokens + 64, save_steps=10_000, merge=False,
        )
    )  # fmt: skip
    # The first step carries one-off costs (allocation, warm-up): the steady rate is over the rest.
    times = [e for e in log["log_history"] if "loss" in e]
    return {
        "tokens": sum(r["tokens"] for r in recs) / len(recs),
        "trained_tokens": sum(r["trained"] for r in recs) / len(recs),
        "steps": log["steps"],
        "seconds": log["seconds"],
        "seconds_per_step": log["seconds"] / log["steps"],
        "loss": [log["loss"][0], log["loss"][-1]],
        "logged": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="Training directory (wren learn convert).")
    parser.add_argument("--convert", default="", help="Convert the bundled GGUF into this directory first.")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.model, args.steps, args.one, Path(args.work))))
        return
    model = args.model
    if args.convert:
        from wren.serve.convert import gguf_to_training_dir
        from wren.serve.embedded import default_model_path

        target = Path(args.convert)
        if not (target / "config.json").is_file():
            gguf_to_training_dir(default_model_path(), target)
        model = str(target)
    if not model:
        parser.error("give --model or --convert")
    with tempfile.TemporaryDirectory(prefix="wren-sft-edit-") as work:
        for tokens in args.tokens:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", str(tokens), "--model", model, "--work", work,
                 "--steps", str(args.steps)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{tokens:5d} tokens (mean {r['tokens']:.0f}, trained {r['trained_tokens']:.0f}): "
                f"{r['seconds_per_step']:5.2f} s/step over {r['steps']} steps "
                f"(loss {r['loss'][0]:.3f} -> {r['loss'][1]:.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
