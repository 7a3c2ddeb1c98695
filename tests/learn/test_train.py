"""SFT and DPO with TRL + PEFT LoRA on a tiny Gemma-shaped model: the loss falls, the weights change."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.learn.tiny import sample_records
from wren.exceptions import ConfigError
from wren.learn.data.export import write_jsonl
from wren.learn.data.tokenize import IGNORE, tokenize_conversation
from wren.learn.train.finetune import TrainConfig, train
from wren.serve.training_dir import load_tokenizer


def _weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def _train(
    tiny_model: Path, tmp_path: Path, records: list[dict], method: str, **settings
) -> tuple[dict, Path]:
    """`records` written as METHOD.jsonl and trained on into tmp_path/METHOD (no checkpoints)."""
    data = tmp_path / f"{method}.jsonl"
    write_jsonl(data, records)
    out = tmp_path / method
    config = TrainConfig(
        model=str(tiny_model),
        data=str(data),
        output=str(out),
        method=method,
        save_steps=100,
        threads=1,  # torch threads spinning against a busy machine slow a tiny model 100x
        **settings,
    )
    return train(config), out


def _first_and_last(losses: list[float]) -> tuple[float, float]:
    """The mean of the first three losses and of the last three."""
    return sum(losses[:3]) / 3, sum(losses[-3:]) / 3


def test_only_trained_assistant_turns_carry_labels(tiny_model: Path):
    tokenizer = load_tokenizer(tiny_model)
    messages = sample_records(1)[0]["messages"]
    messages[2]["train"] = False
    row = tokenize_conversation(tokenizer, messages, 4096)
    trained = tokenizer.decode(
        [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE]
    )
    assert "python -m pytest -q" in trained and "<end_of_turn>" in trained
    assert "grep -n" not in trained and "Fix add" not in trained and "returncode" not in trained


def test_sft_lowers_the_loss_and_changes_the_weights(tiny_model: Path, tmp_path: Path):
    log, out = _train(tiny_model, tmp_path, sample_records(6), "sft", max_steps=30, learning_rate=5e-3)
    assert log["steps"] == 30
    first, last = _first_and_last(log["loss"])
    assert last < 0.7 * first, log["loss"]
    before, after = _weights(tiny_model), _weights(out / "model")
    changed = [k for k in before if k in after and not (before[k] == after[k]).all()]
    assert any("q_proj" in k for k in changed) and any("mlp" in k for k in changed)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "train_log.json").read_text())["steps"] == 30


def test_dpo_prefers_the_chosen_reply(tiny_model: Path, tmp_path: Path):
    pairs = []
    for r in sample_records(6):
        prompt = r["messages"][:2]
        pairs.append(
            {
                "prompt": prompt,
                "chosen": [r["messages"][2]],
                "rejected": [{"role": "assistant", "content": "I will look at it later, maybe."}],
            }
        )
    log, out = _train(tiny_model, tmp_path, pairs, "dpo", max_steps=20, learning_rate=3e-3)
    assert log["steps"] == 20
    first, last = _first_and_last(log["loss"])
    assert last < first, log["loss"]
    margins = [e["rewards/margins"] for e in log["log_history"] if "rewards/margins" in e]
    assert margins[-1] > 0
    before, after = _weights(tiny_model), _weights(out / "model")
    assert any(not (before[k] == after[k]).all() for k in before if k in after)


def _pairs() -> list[dict]:
    return [
        {
            "prompt": r["messages"][:2],
            "chosen": [r["messages"][2]],
            "rejected": [{"role": "assistant", "content": "I will look at it later, maybe."}],
        }
        for r in sample_records(6)
    ]


def _adapter(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter" / "adapter_model.safetensors"))


def test_training_goes_on_from_a_given_adapter(tiny_model: Path, tmp_path: Path):
    first, out = _train(
        tiny_model,
        tmp_path / "first",
        sample_records(6),
        "sft",
        max_steps=20,
        learning_rate=5e-3,
        merge=False,
    )

    # At learning rate 0 the adapter trained on is the given one, as it was saved, and keeps its
    # own settings (rank 16) whatever `lora` says.
    def go_on_from(adapter: Path, **settings: object) -> tuple[dict, Path]:
        return _train(
            tiny_model, tmp_path / "again", sample_records(6), "sft",
            max_steps=2, learning_rate=0.0, merge=False, init_adapter=str(adapter), **settings,
        )  # fmt: skip

    kept, again = go_on_from(out / "adapter", lora={"r": 4})
    saved, continued = _adapter(out), _adapter(again)
    assert saved.keys() == continued.keys() and all((saved[k] == continued[k]).all() for k in saved)
    assert json.loads((again / "adapter" / "adapter_config.json").read_text())["r"] == 16
    # It starts where the first run ended, far below a new adapter's start.
    assert kept["loss"][0] < 0.7 * first["loss"][0], (kept["loss"], first["loss"])
    assert not (again / "model").exists()
    # Run again, it resumes from its own checkpoint, whatever adapter init_adapter names now.
    _, other = _train(
        tiny_model, tmp_path / "other", sample_records(2), "sft", max_steps=1, learning_rate=5e-3, merge=False
    )
    resumed, _ = go_on_from(other / "adapter")
    assert any(not (_adapter(other)[k] == saved[k]).all() for k in saved)
    assert resumed["resumed_from"] and all((_adapter(again)[k] == saved[k]).all() for k in saved)

    # DPO from it keeps it as the reference model: at the first step policy and reference agree.
    log, dpo = _train(
        tiny_model,
        tmp_path / "dpo",
        _pairs(),
        "dpo",
        max_steps=1,
        learning_rate=0.0,
        init_adapter=str(out / "adapter"),
    )
    assert abs(log["loss"][0] - math.log(2)) < 1e-3, log["loss"]
    assert _adapter(dpo).keys() == saved.keys() and not (dpo / "adapter" / "ref").exists()
    assert (dpo / "model" / "model.safetensors").is_file()


def test_init_adapter_must_be_an_adapter(tiny_model: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="init_adapter"):
        _train(tiny_model, tmp_path, sample_records(2), "sft", max_steps=1, init_adapter=str(tmp_path))


def test_a_killed_run_resumes_from_its_last_checkpoint(tiny_model: Path, tmp_path: Path):
    """`wren learn sft` killed with SIGKILL after a checkpoint; the same command resumes from it."""
    import signal
    import subprocess
    import sys

    data = tmp_path / "sft.jsonl"
    write_jsonl(data, sample_records(6))
    out = tmp_path / "sft"
    command = [
        *(sys.executable, "-m", "wren.cli.main", "learn", "sft", "--model", str(tiny_model)),
        *(
            "--data",
            str(data),
            "-o",
            str(out),
            "-c",
            "save_steps=3",
            "-c",
            "save_total_limit=5",
            "-c",
            "threads=1",
        ),
    ]
    # Far more steps than can run before the kill: the first run cannot finish on its own.
    first = subprocess.Popen(
        [*command, "--max-steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        checkpoint = out / "checkpoints" / "checkpoint-3" / "trainer_state.json"
        while not checkpoint.is_file():  # the handshake: a checkpoint written whole
            try:
                first.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError("training ended before its first checkpoint")
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    saved = sorted(
        int(p.name.split("-")[1])
        for p in (out / "checkpoints").glob("checkpoint-*")
        if (p / "trainer_state.json").is_file()
    )
    last = saved[-1]
    second = subprocess.run(
        [*command, "--max-steps", str(last + 4)], capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text())
    assert log["resumed_from"].endswith(f"checkpoint-{last}")
    assert log["steps"] == last + 4
    # The resumed run logged only the steps after the checkpoint; the history before comes from it.
    assert [e["step"] for e in log["log_history"] if "loss" in e][-4:] == list(range(last + 1, last + 5))


def test_the_fused_output_layer_scores_only_trained_positions(tiny_model: Path, monkeypatch):
    """Off Triton devices TRL projects every position through the vocabulary; within
    `trained_positions_only` it projects the labelled ones, with the same log-probabilities."""
    import torch
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import add_fused_lm_head

    from wren.learn.train.finetune import trained_positions_only
    from wren.serve.training_dir import load_model

    model = load_model(tiny_model).eval()
    tokenizer = load_tokenizer(tiny_model)
    row = tokenize_conversation(tokenizer, sample_records(1)[0]["messages"], 4096)
    ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    add_fused_lm_head(model)
    rows: list[int] = []
    apply = ChunkedLogProbFunction.apply

    def counted(hidden, *rest):
        rows.append(hidden.shape[0])
        return apply(hidden, *rest)

    monkeypatch.setattr(ChunkedLogProbFunction, "apply", counted)
    with torch.no_grad():
        everywhere = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs[0]
        with trained_positions_only():
            trained = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs[0]
    mask = labels[0, 1:] != IGNORE
    assert rows == [ids.shape[1] - 1, int(mask.sum())], rows
    expected = full[mask].gather(1, labels[0, 1:][mask].unsqueeze(1)).squeeze(1)
    assert torch.allclose(trained[mask], expected, atol=1e-4)
    assert torch.allclose(everywhere[mask], expected, atol=1e-4)
    assert not trained[~mask].any()


def test_the_trainer_counts_what_max_length_cuts(tiny_model: Path):
    from wren.learn.train.finetune import sft_dataset

    tokenizer = load_tokenizer(tiny_model)
    records = sample_records(2)
    records[1]["messages"][3]["content"] += " and a long observation" * 40
    rows = [tokenize_conversation(tokenizer, r["messages"], 10**6) for r in records]
    # Cut inside the second record's last reply: the first fits, the second loses its end.
    limit = len(rows[0]["input_ids"])
    assert len(rows[1]["input_ids"]) > limit
    lost = sum(label != IGNORE for label in rows[1]["labels"][limit:])
    cut: dict[str, int] = {}
    dataset = sft_dataset(records, tokenizer, limit, cut)
    assert len(dataset) == 2 and max(len(ids) for ids in dataset["input_ids"]) == limit
    total = sum(label != IGNORE for row in rows for label in row["labels"])
    assert cut == {"records": 1, "dropped": 0, "trained_tokens": lost, "trained_tokens_total": total}
    assert lost > 0
