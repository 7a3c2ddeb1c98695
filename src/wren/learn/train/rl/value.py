"""Training the value model (`wren.search.value.ValueModel`) with a LoRA on value records (a
conversation prefix -> the return its run eventually got), and its calibration.

Returns are clipped to [0, 1] as targets of a binary cross-entropy on the head's logit.
Calibration: records binned by prediction, each bin's mean prediction against its observed mean
return (a reliability table and an SVG plot), and the expected calibration error.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import Field

from wren.search.value import ValueModel
from wren.serve.training_dir import SMALL_LORA, LoraSettings, require_training_stack
from wren.validation import StrictModel


class ValueConfig(StrictModel):
    """How the value model is trained."""

    model: str
    """Training directory of the base SLM (what `wren learn convert` makes)."""
    output: str
    """Directory for the LoRA adapter, the head and calibration.json."""
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings(**SMALL_LORA))
    """The adapter (rank 8 on the attention's q and v projections unless set)."""
    lr: float = 1e-3
    """Learning rate."""
    epochs: int = 3
    """Passes over the records."""
    batch_size: int = 4
    """Records per step."""
    max_length: int = 1024
    """Tokens kept of each prefix (its end, which holds the latest state)."""
    holdout: float = 0.2
    """Fraction of records kept out of training for calibration."""
    bins: int = 10
    """Bins of the reliability table."""
    seed: int = 0
    """Seed of the split and the head's initialisation."""


def reliability(predictions: list[float], targets: list[float], bins: int = 10) -> dict[str, Any]:
    """Per bin of prediction: count, mean prediction, mean target; and the expected calibration error."""
    table = []
    ece = 0.0
    n = len(predictions)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [
            (p, t)
            for p, t in zip(predictions, targets, strict=True)
            if lo <= p < hi or (b == bins - 1 and p == 1.0)
        ]
        if not members:
            continue
        mean_p = sum(p for p, _ in members) / len(members)
        mean_t = sum(t for _, t in members) / len(members)
        table.append({"bin": [lo, hi], "count": len(members), "predicted": mean_p, "observed": mean_t})
        ece += len(members) / n * abs(mean_p - mean_t)
    return {"bins": table, "ece": ece if n else None, "n": n}


def reliability_svg(calibration: dict[str, Any], size: int = 240) -> str:
    """A reliability plot: the diagonal, and each bin's observed mean against its predicted mean."""
    points = " ".join(
        f"{b['predicted'] * size:.1f},{size - b['observed'] * size:.1f}" for b in calibration["bins"]
    )
    dots = "".join(
        f'<circle cx="{b["predicted"] * size:.1f}" cy="{size - b["observed"] * size:.1f}" r="3"/>'
        for b in calibration["bins"]
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
        f'<rect width="{size}" height="{size}" fill="white" stroke="black"/>'
        f'<line x1="0" y1="{size}" x2="{size}" y2="0" stroke="gray" stroke-dasharray="4"/>'
        f'<polyline points="{points}" fill="none" stroke="blue"/>{dots}'
        f'<text x="4" y="14" font-size="11">ECE {calibration["ece"] or 0:.3f} (n={calibration["n"]})</text></svg>'
    )


def train_value(records: list[dict[str, Any]], config: ValueConfig) -> dict[str, Any]:
    """Train on value records, save the model, and write calibration.json + reliability.svg."""
    require_training_stack()
    import torch

    if not records:
        raise ValueError("no value records to train on")
    rng = random.Random(config.seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    n_hold = int(len(records) * config.holdout) if len(records) > 1 else 0
    held = [records[i] for i in order[:n_hold]]
    train = [records[i] for i in order[n_hold:]]
    value = ValueModel.create(config.model, config.lora, config.max_length, config.seed)
    optimizer = torch.optim.AdamW(value.parameters(), lr=config.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    value.model.train()
    for _ in range(config.epochs):
        rng.shuffle(train)
        for start in range(0, len(train), config.batch_size):
            chunk = train[start : start + config.batch_size]
            target = torch.tensor([min(max(float(r["return"]), 0.0), 1.0) for r in chunk])
            loss = loss_fn(value.logits([r["messages"] for r in chunk]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    value.model.eval()
    check = held or train
    predictions = value.predict([r["messages"] for r in check])
    targets = [min(max(float(r["return"]), 0.0), 1.0) for r in check]
    calibration = reliability(predictions, targets, config.bins)
    calibration["on"] = "held-out records" if held else "training records (too few to hold any out)"
    out = Path(config.output)
    value.save(out, config.model)
    (out / "calibration.json").write_text(json.dumps({**calibration, "losses": losses}, indent=1))
    (out / "reliability.svg").write_text(reliability_svg(calibration))
    return {"losses": losses, "calibration": calibration, "output": str(out)}


def value_summary(result: dict[str, Any]) -> str:
    """One line on a trained value model: its loss, its calibration, and where it is."""
    cal = result["calibration"]
    return (
        f"value: loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}; ECE {cal['ece']:.3f} on "
        f"{cal['n']} {cal['on']}; model, calibration.json and reliability.svg in {result['output']}"
    )
