"""The value model on a tiny Gemma-shaped model: it learns which prefixes lead to a resolved run,
saves and loads, and reports its calibration."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from wren.learn.train.rl.value import ValueConfig, reliability, train_value  # noqa: E402
from wren.search.value import ValueModel  # noqa: E402


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        good = i % 2 == 0
        word = "passed" if good else "failed"
        out.append(
            {
                "messages": [
                    {"role": "system", "content": "You solve tasks with bash."},
                    {"role": "user", "content": f"Fix add in calc/ops.py; test {i}."},
                    {
                        "role": "assistant",
                        "content": "THOUGHT: run the tests.\n\n```bash\npython -m pytest -q\n```",
                    },
                    {
                        "role": "user",
                        "content": f"<returncode>{0 if good else 1}</returncode>\n<output>\n{word} {word}\n</output>",
                    },
                ],
                "return": 1.0 if good else 0.0,
            }
        )
    return out


def test_value_model_separates_outcomes_round_trips_and_is_calibrated(tiny_model, tmp_path):
    records = _records(16)
    config = ValueConfig(
        model=str(tiny_model), output=str(tmp_path / "value"), epochs=6, lr=3e-3, holdout=0.25
    )
    result = train_value(records, config)
    assert result["losses"][-1] < result["losses"][0]
    loaded = ValueModel.load(tmp_path / "value")
    good = [loaded(r["messages"]) for r in records if r["return"] == 1.0]
    bad = [loaded(r["messages"]) for r in records if r["return"] == 0.0]
    assert min(good) > max(bad), (good, bad)
    calibration = json.loads((tmp_path / "value" / "calibration.json").read_text())
    assert calibration["n"] == 4 and calibration["on"] == "held-out records"
    assert 0.0 <= calibration["ece"] <= 1.0 and sum(b["count"] for b in calibration["bins"]) == 4
    assert (tmp_path / "value" / "reliability.svg").read_text().startswith("<svg")


def test_reliability_by_hand():
    got = reliability([0.05, 0.15, 0.95, 0.95], [0.0, 1.0, 1.0, 0.0], bins=10)
    assert [b["count"] for b in got["bins"]] == [1, 1, 2]
    # |0.05 - 0| * 1/4 + |0.15 - 1| * 1/4 + |0.95 - 0.5| * 2/4
    assert got["ece"] == pytest.approx(0.05 / 4 + 0.85 / 4 + 0.45 / 2)
