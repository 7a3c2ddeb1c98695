"""A training directory (what `transformers` saves: config, weights, a tokenizer with a chat template)
loaded as a model, with or without a LoRA adapter; the value model, RL and training share it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError
from wren.validation import StrictModel


class LoraSettings(StrictModel):
    """The LoRA adapter that is trained."""

    r: int = 16
    """Rank of the adapter matrices."""
    alpha: int = 32
    """Scale of the adapter's update (alpha / r)."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: list[str] | str = "all-linear"
    """Modules that get an adapter: names, or 'all-linear' (every linear layer but the output head)."""


# The value model and GRPO adapt only attention's q and v projections, at a low rank.
SMALL_LORA: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def lora_config(settings: LoraSettings, task_type: str | None = None) -> Any:
    """PEFT's LoraConfig for `settings` (SFT/DPO, the value model and GRPO share one shape)."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type=task_type,
    )


def require_training_stack() -> None:
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"training needs the learn extra ({e.name} is missing): pip install torch (CPU wheel first), "
            "then pip install 'wren-agent[learn]'"
        ) from e


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not tokenizer.chat_template:
        raise ConfigError(
            f"the tokenizer in {path} has no chat template; convert the model with `wren learn convert`"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str | Path, dtype: str = "fp32") -> Any:
    """The model in `path`, its weights in `dtype` as `wren.serve.train_dtype.torch_dtype` says
    (fp32 unless asked: CPUs without fast bf16 are the common case)."""
    from transformers import AutoModelForCausalLM

    from wren.serve.train_dtype import torch_dtype

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype))


def adapted_model(
    model_dir: str | Path,
    lora: LoraSettings | None = None,
    adapter_dir: str | Path | None = None,
    *,
    trainable: bool = True,
) -> Any:
    """The model in `model_dir` with a LoRA: the one saved in `adapter_dir` where it holds one (frozen
    unless `trainable`), else a new one of `lora` (the value model, GRPO/PPO and merging share this)."""
    require_training_stack()
    from peft import PeftModel, get_peft_model

    base = load_model(model_dir)
    if adapter_dir is not None and (Path(adapter_dir) / "adapter_config.json").is_file():
        return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=trainable)
    if lora is None:
        raise ConfigError(f"no LoRA adapter in {adapter_dir} (adapter_config.json is missing)")
    return get_peft_model(base, lora_config(lora))


def render(tokenizer: Any, messages: list[dict], *, generation_prompt: bool = False) -> str:
    """The conversation as the tokenizer's chat template writes it (roles and contents only)."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=generation_prompt)
