"""Thin wiring of TRL's SFT and DPO trainers with a PEFT LoRA, on a training directory.

A training directory is what `transformers` saves (config, weights, tokenizer with a chat
template); `wren learn convert` makes one from a GGUF. The output directory holds checkpoints
(so a killed run resumes from the last one), the adapter, the merged model (itself a training
directory, for the next round or for GGUF export) and `train_log.json`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from wren.exceptions import ConfigError
from wren.learn.data.export import read_jsonl
from wren.learn.data.tokenize import IGNORE, tokenize_conversation
from wren.serve.train_dtype import DeviceFacts, Dtype, choose_dtype, device_facts
from wren.serve.training_dir import (
    LoraSettings,
    adapted_model,
    load_model,
    load_tokenizer,
    lora_config,
    require_training_stack,
)
from wren.validation import StrictModel

CHECKPOINTS = "checkpoints"
MAX_COPIES = 4


class TrainConfig(StrictModel):
    """One training run: `wren learn sft` or `wren learn dpo`."""

    model: str
    """Training directory of the starting model."""
    data: str
    """sft.jsonl or dpo.jsonl from `wren learn export`."""
    output: str
    """Output directory (checkpoints, adapter, merged model, train_log.json)."""
    max_steps: int = 0
    """Optimizer steps; 0 = `epochs` passes over the data."""
    epochs: float = 1.0
    """Passes over the data when max_steps is 0."""
    learning_rate: float = 2e-4
    """Peak learning rate (linear decay after a short warm-up)."""
    batch_size: int = 1
    """Records per forward pass."""
    grad_accum: int = 1
    """Forward passes per optimizer step."""
    max_length: int = 1024
    """Tokens per record; longer records are cut (export windows keep them within this)."""
    save_steps: int = 10
    """A checkpoint every this many steps (what a killed run resumes from)."""
    save_total_limit: int = 2
    """Checkpoints kept."""
    seed: int = 0
    """Seed of data order, dropout and adapter initialisation."""
    beta: float = 0.1
    """DPO: strength of the pull towards the reference model."""
    threads: int = 0
    """torch threads (0 = torch's default)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, somewhat slower steps."""
    merge: bool = True
    """Also write the model with the adapter merged in (`OUTPUT/model`)."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """The adapter (ignored with init_adapter, whose own settings are kept)."""
    init_adapter: str = ""
    """The adapter whose weights training starts from, trainable and with the settings it was
    saved with, instead of a new LoRA: one adapter over the same base model, trained on over
    several runs. A PEFT adapter directory (an earlier run's `OUTPUT/adapter`), a llama.cpp LoRA
    adapter GGUF, or a catalog entry that applies one (`wren-edit-270m`: Wren's shipped model, to
    tune further). A checkpoint of this run, where one exists, is resumed from instead."""
    method: Literal["sft", "dpo"] = "sft"
    """Which trainer runs."""
    dtype: Dtype = "auto"
    """Number format of training: auto (bf16 on a CUDA device that has it, fp16 on one that does
    not, fp32 on the CPU), or fp32, bf16, fp16 (an error where the device lacks it)."""


def sft_dataset(
    records: list[dict[str, Any]], tokenizer: Any, max_length: int, cut: dict[str, int] | None = None
) -> Any:
    """Token ids and labels per record; a record's weight is how many copies of it are trained on.

    `cut`, when given, is filled with what `max_length` took away: `records` cut short, `dropped`
    (nothing trained left) and `trained_tokens` lost, out of `trained_tokens_total`.
    """
    from datasets import Dataset

    weights = [float(r.get("weight", 1.0)) for r in records]
    top = max(weights, default=1.0)
    uniform = len(set(weights)) <= 1 or top <= 0
    rows = []
    lost = {"records": 0, "dropped": 0, "trained_tokens": 0, "trained_tokens_total": 0}
    for record, weight in zip(records, weights, strict=True):
        whole = tokenize_conversation(tokenizer, record["messages"], sys.maxsize)
        row = {key: values[:max_length] for key, values in whole.items()}
        trained = sum(label != IGNORE for label in whole["labels"])
        lost["trained_tokens_total"] += trained
        if len(whole["input_ids"]) > max_length:
            lost["records"] += 1
            lost["trained_tokens"] += trained - sum(label != IGNORE for label in row["labels"])
        if all(label == IGNORE for label in row["labels"][1:]):
            lost["dropped"] += 1
            continue
        copies = 1 if uniform else max(1, min(MAX_COPIES, round(MAX_COPIES * weight / top)))
        rows += [row] * copies
    if cut is not None:
        cut.update(lost)
    if not rows:
        raise ConfigError("no record has a trainable assistant turn within max_length")
    return Dataset.from_list(rows)


def dpo_dataset(records: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    keep = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records]
    for row in keep:
        for turns in row.values():
            for m in turns:
                m.pop("train", None)
    if not keep:
        raise ConfigError("the DPO data holds no pairs")
    return Dataset.from_list(keep)


def last_checkpoint(output: Path) -> str | None:
    """The newest complete checkpoint; newer ones that a kill cut short are removed."""
    directory = output / CHECKPOINTS
    if not directory.is_dir():
        return None
    found = [(int(p.name.split("-")[1]), p) for p in directory.glob("checkpoint-*") if p.name[11:].isdigit()]
    for _, path in sorted(found, reverse=True):
        # The Trainer writes trainer_state.json last: without it (or cut short) the checkpoint is partial.
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return None


def _arguments(
    cls: Any, config: TrainConfig, n_records: int, facts: DeviceFacts | None = None, **extra: Any
) -> Any:
    steps = config.max_steps or max(
        1, math.ceil(config.epochs * n_records / (config.batch_size * config.grad_accum))
    )
    facts = facts or DeviceFacts("cpu")
    dtype = choose_dtype(config.dtype, facts)
    return cls(
        output_dir=str(Path(config.output) / CHECKPOINTS),
        max_steps=steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=min(10, steps // 10),
        logging_steps=1,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        use_cpu=facts.device == "cpu",
        bf16=dtype == "bf16",
        fp16=dtype == "fp16",
        max_length=config.max_length,
        dataloader_num_workers=0,
        gradient_checkpointing=config.gradient_checkpointing,
        **extra,
    )


@contextmanager
def trained_positions_only() -> Iterator[None]:
    """Within it, TRL's fused output layer scores only the positions that carry a label.

    TRL does that only on Triton devices (CUDA, XPU) and elsewhere projects every position
    through the whole vocabulary, because a varying number of positions would make compiled
    kernels recompile. On the CPU nothing is compiled, and Gemma's 262k-token vocabulary made
    that projection about 60% of an SFT step (1,024 tokens: 30 s a step, 12 s with this).
    """
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        trl_utils = None
    chooser = getattr(trl_utils, "_use_triton", None)
    if chooser is None:  # no TRL, or one without the fused head: nothing to change
        yield
        return
    # Only the compaction reads this name in `trl.trainer.utils`; the kernel module keeps its own
    # check, so the projection itself still runs in torch off Triton devices.
    trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = chooser


def train(config: TrainConfig) -> dict[str, Any]:
    """Train (resuming from the last checkpoint in the output directory); return the training log."""
    require_training_stack()
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    if not Path(config.data).is_file():
        raise ConfigError(f"data file {config.data} does not exist (make it with `wren learn export`)")
    records = read_jsonl(config.data)
    facts = device_facts()
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, choose_dtype(config.dtype, facts))
    lora = lora_config(config.lora, task_type="CAUSAL_LM")
    if config.init_adapter:
        start = peft_adapter_dir(config.init_adapter, config.model, output / "init-adapter")
        model, lora = _with_adapter(model, str(start)), None
    cut: dict[str, int] = {}
    if config.method == "sft":
        from trl import SFTConfig, SFTTrainer

        dataset = sft_dataset(records, tokenizer, config.max_length, cut)
        if cut["trained_tokens"]:
            # Windows made with a rough token count can outgrow max_length; say so, it is lost data.
            print(
                f"wren learn sft: max_length {config.max_length} cut {cut['records']} of {len(records)} records "
                f"({cut['trained_tokens']} of {cut['trained_tokens_total']} trained tokens, "
                f"{cut['dropped']} records dropped); export with --tokenizer and this max length",
                file=sys.stderr,
            )
        args = _arguments(
            SFTConfig, config, len(dataset), facts, dataset_kwargs={"skip_prepare_dataset": True}
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
        )
    else:
        from trl import DPOConfig, DPOTrainer

        dataset = dpo_dataset(records)
        args = _arguments(DPOConfig, config, len(dataset), facts, beta=config.beta)
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
        )
    resume = last_checkpoint(output)
    started = time.monotonic()
    with trained_positions_only():
        trainer.train(resume_from_checkpoint=resume)
    seconds = time.monotonic() - started
    trained = trainer.model
    if "ref" in getattr(trained, "peft_config", {}):
        # DPO over a given adapter keeps a frozen copy of it as the reference; only "default" is trained.
        trained.delete_adapter("ref")
    trained.save_pretrained(str(output / "adapter"))
    tokenizer.save_pretrained(str(output / "adapter"))
    if config.merge:
        # Saved in fp32 whatever training computed in: GGUF export reads it.
        merged = trained.merge_and_unload().to(torch.float32)
        merged.save_pretrained(str(output / "model"))
        tokenizer.save_pretrained(str(output / "model"))
        _copy_source(Path(config.model), output / "model")
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    log = {
        "method": config.method,
        "model": config.model,
        "data": config.data,
        "records": len(records),
        "examples": len(dataset),
        "cut_by_max_length": cut,
        "steps": trainer.state.global_step,
        "resumed_from": resume,
        "seconds": round(seconds, 2),
        "loss": losses,
        "log_history": trainer.state.log_history,
        "config": config.model_dump(),
    }
    tmp = output / ".train_log.json.tmp"
    tmp.write_text(json.dumps(log, indent=2))
    os.replace(tmp, output / "train_log.json")
    return log


def peft_adapter_dir(init_adapter: str, model_dir: str | Path, converted: Path) -> Path:
    """The PEFT directory of `init_adapter` (see TrainConfig): itself, or, for an adapter GGUF or
    a catalog entry's, the GGUF written as one under `converted` over the base in `model_dir`
    (with the default LoRA dropout: a GGUF does not record the one it was trained with)."""
    path = Path(init_adapter).expanduser()
    if not path.exists():
        from wren.models.catalog import load_catalog

        entry = load_catalog().get(init_adapter)
        wren = entry.agent_specific.get("wren") if entry is not None else None
        if wren is None or len(wren.lora) != 1:
            raise ConfigError(
                f"init_adapter {init_adapter!r} is neither a file, a directory, nor a catalog entry "
                "with one adapter"
            )
        path = Path(wren.lora[0])
    if path.is_dir():
        return path
    from wren.serve.adapter_import import import_adapter_gguf

    return import_adapter_gguf(path, converted, model_dir, lora_dropout=LoraSettings().dropout)


def _with_adapter(model: Any, adapter_dir: str) -> Any:
    """`model` with the LoRA saved in `adapter_dir` over it, trainable."""
    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ConfigError(
            f"init_adapter {adapter_dir} is not a PEFT adapter (adapter_config.json is missing)"
        )
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)


def merge_adapter(model_dir: str | Path, adapter_dir: str | Path, out: str | Path) -> Path:
    """The base model with a LoRA adapter merged in, saved as a training directory (for `gguf`)."""
    out = Path(out)
    merged = adapted_model(model_dir, adapter_dir=adapter_dir, trainable=False).merge_and_unload()
    merged.save_pretrained(str(out))
    load_tokenizer(model_dir).save_pretrained(str(out))
    _copy_source(Path(model_dir), out)
    return out


def _copy_source(model_dir: Path, out: Path) -> None:
    """Carry the record of the GGUF a model came from (its tokenizer is needed to write GGUF again)."""
    from wren.serve.convert import SOURCE_FILE

    if (model_dir / SOURCE_FILE).is_file():
        (out / SOURCE_FILE).write_text((model_dir / SOURCE_FILE).read_text())


def train_summary(log: dict[str, Any], output: str | Path) -> str:
    """One line on a finished training run: steps, time, loss, and where the result is."""
    method = log["config"]["method"]
    resumed = f", resumed from {log['resumed_from']}" if log["resumed_from"] else ""
    first, last = (log["loss"][0], log["loss"][-1]) if log["loss"] else (float("nan"), float("nan"))
    return (
        f"{method}: {log['steps']} steps in {log['seconds']:.0f} s{resumed}; loss {first:.3f} -> {last:.3f}; "
        f"adapter and model in {output}"
    )
