from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Gemma-shaped training directory (the test skips where the learn extra is not installed)."""
    pytest.importorskip("trl", reason="the learn extra (torch, transformers, peft, trl) is not installed")
    from tests.learn.tiny import build_tiny_model, sample_records

    corpus = [m["content"] for r in sample_records(12) for m in r["messages"]] * 3
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)
