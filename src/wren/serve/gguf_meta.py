"""Reading a GGUF file's key-value metadata, fast.

gguf-py's reader maps every field of the file into numpy views, which takes about a minute for
a 262k-entry vocabulary on a loaded machine; reading the header sequentially takes well under
a second. Only the metadata is read, never the tensors.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
# GGUF value types: id -> struct format (strings and arrays are handled apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


class _Cursor:
    def __init__(self, data: Any):
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.take("Q")
        text = bytes(self.data[self.pos : self.pos + n]).decode("utf-8", errors="surrogateescape")
        self.pos += n
        return text

    def value(self, vtype: int) -> Any:
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            sub, n = self.take("I"), self.take("Q")
            if sub == STRING:
                return sub, [self.string() for _ in range(n)]
            fmt = _SCALARS[sub]
            values = list(struct.unpack_from(f"<{n}{fmt}", self.data, self.pos))
            self.pos += n * struct.calcsize(fmt)
            return sub, values
        return self.take(_SCALARS[vtype])


def read_metadata(path: str | Path, prefix: str = "") -> dict[str, tuple[int, Any, int | None]]:
    """{key: (value type, value, array item type or None)} for the keys starting with `prefix`."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cursor = _Cursor(data)
        if bytes(data[:4]) != MAGIC:
            raise ValueError(f"{path} is not a GGUF file")
        cursor.pos = 4
        version = cursor.take("I")
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        cursor.take("Q")  # tensor count
        n_kv = cursor.take("Q")
        out: dict[str, tuple[int, Any, int | None]] = {}
        for _ in range(n_kv):
            key = cursor.string()
            vtype = cursor.take("I")
            value = cursor.value(vtype)
            if not key.startswith(prefix):
                continue
            if vtype == ARRAY:
                sub, items = value
                out[key] = (vtype, items, sub)
            else:
                out[key] = (vtype, value, None)
        return out
