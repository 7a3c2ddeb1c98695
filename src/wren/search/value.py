"""The value model: a scalar head on the SLM with a LoRA, estimating from a conversation prefix the
probability that its run ends resolved.

The head reads the hidden state of the prefix's last token and outputs a logit; sigmoid(logit) is
the estimate. `ValueModel.__call__(messages)` is the `value_fn` of the tree search; training it
(`wren learn value`) lives in `wren.learn.train.rl.value`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wren.serve.training_dir import (
    LoraSettings,
    adapted_model,
    load_tokenizer,
    render,
    require_training_stack,
)

HEAD_FILE = "value_head.pt"


def _torch():
    require_training_stack()
    import torch

    return torch


def _head_module(hidden: int) -> Any:
    torch = _torch()
    head = torch.nn.Linear(hidden, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


class ValueModel:
    """The base model with a LoRA and a scalar head; call it on messages for a value in [0, 1]."""

    def __init__(self, model: Any, head: Any, tokenizer: Any, max_length: int = 1024):
        self.model, self.head, self.tokenizer, self.max_length = model, head, tokenizer, max_length

    @classmethod
    def create(cls, base: str, lora: LoraSettings, max_length: int = 1024, seed: int = 0) -> ValueModel:
        """A new, untrained value model on the training directory `base`."""
        torch = _torch()
        torch.manual_seed(seed)
        model = adapted_model(base, lora)
        hidden = model.get_base_model().config.hidden_size
        return cls(model, _head_module(hidden), load_tokenizer(base), max_length)

    @classmethod
    def load(cls, directory: str | Path) -> ValueModel:
        """A value model saved by `save` (the base model's path is in its meta file)."""
        torch = _torch()
        directory = Path(directory)
        meta = json.loads((directory / "value_model.json").read_text())
        model = adapted_model(meta["base"], adapter_dir=directory / "adapter", trainable=False)
        head = _head_module(model.get_base_model().config.hidden_size)
        head.load_state_dict(torch.load(directory / HEAD_FILE, weights_only=True))
        return cls(model, head, load_tokenizer(meta["base"]), meta["max_length"])

    def save(self, directory: str | Path, base: str) -> None:
        torch = _torch()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(directory / "adapter"))
        torch.save(self.head.state_dict(), directory / HEAD_FILE)
        (directory / "value_model.json").write_text(
            json.dumps({"base": str(base), "max_length": self.max_length})
        )

    def parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad] + list(self.head.parameters())

    def _encode(self, batch: list[list[dict]]) -> tuple[Any, Any]:
        torch = _torch()
        rows = []
        for messages in batch:
            text = render(self.tokenizer, messages) if messages else ""
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][-self.max_length :] or [
                self.tokenizer.pad_token_id
            ]
            rows.append(ids)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return ids, mask

    def logits(self, batch: list[list[dict]]) -> Any:
        """One logit per conversation, from the hidden state of its last real token."""
        torch = _torch()
        ids, mask = self._encode(batch)
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        last = mask.sum(dim=1) - 1
        return self.head(hidden[torch.arange(len(batch)), last]).squeeze(-1)

    def __call__(self, messages: list[dict]) -> float:
        torch = _torch()
        with torch.no_grad():
            return float(torch.sigmoid(self.logits([messages]))[0])

    def predict(self, batch: list[list[dict]]) -> list[float]:
        torch = _torch()
        with torch.no_grad():
            return [float(v) for v in torch.sigmoid(self.logits(batch))]
