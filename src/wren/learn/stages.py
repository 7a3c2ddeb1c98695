"""The stage runner of `wren learn loop`: each named stage runs once, and its JSON result, written
when it finishes, is the proof that it did. A loop killed anywhere resumes with the stage it was in."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Stages:
    """Runs each named stage once; its JSON result is the proof that it finished."""

    def __init__(self, work: Path, log: Callable[[str], None] = print):
        self.dir = work / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.dir / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
        self.log(f"stage {name} ...")
        started = time.monotonic()
        result = fn()
        result["seconds"] = round(time.monotonic() - started, 1)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        os.replace(tmp, path)
        self.log(f"stage {name} done in {result['seconds']:.0f} s")
        return result

    def result(self, name: str) -> dict[str, Any] | None:
        """The result of a finished stage; None when it has not finished."""
        path = self.dir / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def timings(self) -> dict[str, float]:
        return {
            p.stem: json.loads(p.read_text()).get("seconds", 0.0) for p in sorted(self.dir.glob("*.json"))
        }
