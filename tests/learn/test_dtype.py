"""Training's number format follows the device: bf16 where CUDA has it, fp16 where only that, fp32 on the CPU."""

from __future__ import annotations

import pytest

from wren.config.loader import validate
from wren.exceptions import ConfigError
from wren.learn.train.finetune import TrainConfig
from wren.serve.train_dtype import DeviceFacts, choose_dtype

CPU = DeviceFacts("cpu")
AMPERE = DeviceFacts("cuda", bf16=True)
TURING = DeviceFacts("cuda", bf16=False)


@pytest.mark.parametrize(
    ("requested", "facts", "chosen"),
    [
        ("auto", CPU, "fp32"),
        ("auto", AMPERE, "bf16"),
        ("auto", TURING, "fp16"),
        ("fp32", AMPERE, "fp32"),
        ("fp32", CPU, "fp32"),
        ("bf16", CPU, "bf16"),  # asked for: CPU autocast in bf16 exists (slow on most processors)
        ("bf16", AMPERE, "bf16"),
        ("fp16", TURING, "fp16"),
        ("fp16", AMPERE, "fp16"),
    ],
)
def test_the_format_is_the_one_asked_for_or_the_best_the_device_has(requested, facts, chosen):
    assert choose_dtype(requested, facts) == chosen


@pytest.mark.parametrize(("requested", "facts", "message"), [("fp16", CPU, "CUDA"), ("bf16", TURING, "bf16")])
def test_a_format_the_device_lacks_is_an_error(requested, facts, message):
    with pytest.raises(ConfigError, match=message):
        choose_dtype(requested, facts)


def test_the_config_takes_only_known_formats(tmp_path):
    where = {"model": "m", "data": "d", "output": str(tmp_path)}
    assert validate(TrainConfig, where, where="sft").dtype == "auto"
    with pytest.raises(ConfigError, match="dtype"):
        validate(TrainConfig, {**where, "dtype": "int8"}, where="sft")


def test_on_the_cpu_the_trainer_runs_in_fp32(tmp_path):
    pytest.importorskip("trl", reason="the learn extra is not installed")
    from trl import SFTConfig

    from wren.learn.train.finetune import _arguments

    config = TrainConfig(model="m", data="d", output=str(tmp_path))
    args = _arguments(SFTConfig, config, 4, CPU)
    assert (args.use_cpu, args.bf16, args.fp16) == (True, False, False)
