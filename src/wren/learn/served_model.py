"""A model the loop runs agents on: a GGUF served here by llama.cpp with adapter GGUFs over it, or
the URL of a server that already serves one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServedModel:
    """The base GGUF (or URL) and the LoRA adapter GGUFs llama.cpp applies over it, in order."""

    gguf: str
    lora: tuple[str, ...] = ()

    @property
    def is_url(self) -> bool:
        return self.gguf.startswith(("http://", "https://"))

    def to_dict(self) -> dict[str, Any]:
        """How reports and stage results record it."""
        return {"gguf": self.gguf, "lora": list(self.lora)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedModel:
        return cls(data["gguf"], tuple(data.get("lora") or ()))

    def __str__(self) -> str:
        return " + ".join((self.gguf, *self.lora))
