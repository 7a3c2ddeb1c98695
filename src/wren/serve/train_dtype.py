"""Which number format training computes in, from what the device supports.

`auto` picks bf16 on a CUDA device that supports it (the same range as fp32, half the memory and
several times the throughput of its tensor cores), fp16 mixed precision on a CUDA device without
bf16, and fp32 on the CPU, where bf16 is slow on most processors and fp16 is not supported by the
trainer. Asking for a format the device lacks is an error, not a silent fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wren.exceptions import ConfigError

Dtype = Literal["auto", "fp32", "bf16", "fp16"]
Device = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class DeviceFacts:
    """What the training device offers."""

    device: Device
    bf16: bool = False
    """The device computes in bf16 (a CUDA device of compute capability 8.0 or more)."""


def choose_dtype(requested: Dtype, facts: DeviceFacts) -> Literal["fp32", "bf16", "fp16"]:
    """The format training uses: `requested`, or with `auto` the best the device supports."""
    if requested == "auto":
        if facts.device == "cpu":
            return "fp32"
        return "bf16" if facts.bf16 else "fp16"
    if requested == "fp16" and facts.device == "cpu":
        raise ConfigError(
            "dtype fp16 needs a CUDA device (the trainer has no fp16 on the CPU); use fp32 or auto"
        )
    if requested == "bf16" and facts.device == "cuda" and not facts.bf16:
        raise ConfigError("dtype bf16: this CUDA device does not support bf16; use fp16 or auto")
    return requested


def device_facts() -> DeviceFacts:
    """The device training would run on here: the first CUDA device, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return DeviceFacts("cuda", bf16=bool(torch.cuda.is_bf16_supported()))
    return DeviceFacts("cpu")


def torch_dtype(dtype: Literal["fp32", "bf16", "fp16"]) -> object:
    """The torch dtype the frozen base weights are loaded in. fp16 loads fp32 weights: fp16
    training is mixed precision (autocast and a loss scale), which needs fp32 parameters."""
    import torch

    return torch.bfloat16 if dtype == "bf16" else torch.float32
