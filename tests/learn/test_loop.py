"""The loop's bookkeeping: stages run once and resume, intervals over seeds, the report renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wren.config.loader import validate
from wren.exceptions import ConfigError
from wren.learn.data.episodes import Episode
from wren.learn.data.export import ExportConfig
from wren.learn.loop import LoopConfig
from wren.learn.metrics import interval, run_metrics
from wren.learn.report import write_report
from wren.learn.stages import Stages


def test_a_finished_stage_is_not_run_again(tmp_path: Path):
    calls = []
    stages = Stages(tmp_path, log=lambda line: None)
    assert stages.run("a", lambda: calls.append(1) or {"value": 1})["value"] == 1
    assert (
        Stages(tmp_path, log=lambda line: None).run("a", lambda: calls.append(2) or {"value": 2})["value"]
        == 1
    )
    assert calls == [1]

    def killed() -> dict:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stages.run("b", killed)
    assert not (tmp_path / "stages" / "b.json").exists()  # an interrupted stage runs again next time
    assert set(stages.timings()) == {"a"}


def test_interval_is_a_t_interval_over_seeds():
    result = interval([0.1, 0.2, 0.3])
    assert result["mean"] == pytest.approx(0.2)
    assert result["ci95"] == pytest.approx(4.303 * 0.1 / 3**0.5)
    assert interval([0.5]) == {"mean": 0.5, "ci95": 0.0, "n": 1}


def test_metrics_count_replies_cut_at_the_token_limit_apart_from_format_errors():
    def reply(content: str, finish: str) -> dict:
        return {"role": "assistant", "content": content, "extra": {"finish_reason": finish}}

    opening = [{"role": "system", "content": "s"}, {"role": "user", "content": "Task: t"}]
    replies = [
        reply("THOUGHT: a\n```bash\nls\n```", "stop"),
        reply("THOUGHT: b\n```bash\npython -m pytest -p no:cacheproviderprovider", "length"),  # open block
        reply("THOUGHT: c and on and on", "length"),
        reply("THOUGHT: d\n```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```", "stop"),
    ]
    messages = opening + [m for r in replies for m in (r, {"role": "user", "content": "Output: x"})]
    episode = Episode("i", messages, "Submitted", "", opening=len(opening))
    assert episode.cut_steps() == [4, 6]
    metrics = run_metrics([episode], 2, ExportConfig())
    assert metrics["cut_rate"] == pytest.approx(2 / 4)
    assert metrics["format_error_rate"] == pytest.approx(1 / 4)  # the open block is still an action
    assert metrics["submit_rate"] == pytest.approx(1 / 2)


def test_loop_config_names_unknown_keys(tmp_path: Path):
    with pytest.raises(ConfigError, match="heldout_repo"):
        validate(LoopConfig, {"work_dir": str(tmp_path), "train_repos": [], "heldout_repo": []}, where="loop")


@pytest.mark.parametrize(
    ("section", "key"),
    [("sft", "learning_rat"), ("dpo", "epoch"), ("synth", "mutator"), ("edit_check", "sample")],
)
def test_a_typo_in_a_stage_config_fails_when_the_loop_config_is_read(tmp_path: Path, section: str, key: str):
    data = {"work_dir": str(tmp_path), "train_repos": [], "heldout_repos": [], section: {key: 1}}
    with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
        validate(LoopConfig, data, where="loop")


def test_the_stage_configs_are_composed_from_the_loop_settings(tmp_path: Path):
    from wren.learn.loop import Loop

    data = {"work_dir": str(tmp_path), "train_repos": [], "heldout_repos": [], "workers": 3}
    loop = Loop(validate(LoopConfig, data, where="loop"), log=lambda line: None)
    sft = loop.train_config(loop.config.sft, "base", tmp_path / "sft.jsonl", tmp_path / "out", "sft")
    assert (sft.model, sft.method, sft.max_length, sft.epochs, sft.learning_rate) == (
        "base",
        "sft",
        3072,
        1.0,
        2e-4,
    )
    dpo = loop.train_config(loop.config.dpo, "m", tmp_path / "dpo.jsonl", tmp_path / "dpo", "dpo")
    assert (dpo.max_steps, dpo.learning_rate, dpo.method) == (6, 5e-5, "dpo")
    # Settings given replace the defaults as a whole section, as a YAML section does.
    given = validate(LoopConfig, {**data, "sft": {"epochs": 2.0}}, where="loop")
    assert Loop(given, log=print).train_config(given.sft, "b", tmp_path, tmp_path, "sft").max_length == 1024
    synth = loop.synth_config("repo", tmp_path / "tasks.jsonl", 5)
    assert (synth.workers, synth.max_tasks, synth.progress, synth.repo_dir) == (3, 5, False, "repo")
    own = validate(LoopConfig, {**data, "synth": {"workers": 1, "timeout": 9}}, where="loop")
    assert Loop(own, log=print).synth_config("r", tmp_path / "t.jsonl", 1).workers == 1


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ""])
def test_eval_variant_names_that_would_leave_the_eval_directory_are_refused(tmp_path: Path, name: str):
    data = {"work_dir": str(tmp_path), "train_repos": [], "heldout_repos": []}
    with pytest.raises(ConfigError, match="eval variant name"):
        validate(LoopConfig, {**data, "eval_variants": {name: ["model.constrain=off"]}}, where="loop")
    validate(LoopConfig, {**data, "eval_variants": {"no-grammar_1.5": ["model.constrain=off"]}}, where="loop")


def test_report_has_json_and_html_with_plots(tmp_path: Path):
    summary = {
        "resolve_rate": {"mean": 0.1, "ci95": 0.05, "n": 3},
        "format_error_rate": {"mean": 0.4, "ci95": 0.1, "n": 3},
    }
    report = {
        "config": {},
        "rounds": [
            {"round": 0, "data": {"rollout_reward": 0.2}, "sft_loss": [2.0, 1.5, 1.0], "dpo_loss": []}
        ],
        "evaluations": {
            "base": {"tasks": 30, "per_seed": [], "summary": summary},
            "round-0": {
                "tasks": 30,
                "per_seed": [],
                "summary": {**summary, "resolve_rate": {"mean": 0.3, "ci95": 0.1, "n": 3}},
                "commands": {"test": 417, "find": 23},
            },
        },
        "stage_seconds": {"sft-0": 100.0, "eval-base-seed-0": 50.0},
    }
    path = write_report(report, tmp_path / "report.json")
    assert "Not run" in path.with_suffix(".html").read_text()  # a report from before probes
    rates = {"n": 12, "same_kind": 0.75, "exact": 0.25}
    probe = {"overall": rates, "by_step": {"1": rates}, "by_kind": {"edit": rates}, "confusion": {}}
    report["probes"] = {"round-0": {"episodes": 12, "summary": probe}}
    path = write_report(report, tmp_path / "report.json")
    assert json.loads(path.read_text())["evaluations"]["round-0"]["summary"]["resolve_rate"]["mean"] == 0.3
    html = path.with_suffix(".html").read_text()
    assert html.count("<svg") >= 6 and "0.300 ± 0.100" in html and "2.000 → 1.000" in html
    assert "<td>417</td>" in html and "<th>no action</th>" in html  # a report from before still renders
    assert "<th>edit</th>" in html and "<td>0.75 / 0.25</td>" in html


def test_evaluation_variants_change_only_their_settings(tmp_path: Path):
    from wren.learn.loop import Loop

    config = LoopConfig(
        work_dir=str(tmp_path),
        train_repos=[],
        heldout_repos=[],
        eval_variants={"unconstrained": ["model.constrain=off"]},
    )
    loop = Loop(config, log=lambda line: None)
    plain = loop.bench_config("http://127.0.0.1:9/v1", seed=3)
    variant = loop.bench_config("http://127.0.0.1:9/v1", seed=3, extra=config.eval_variants["unconstrained"])
    # The bundled SLM's catalog entry constrains replies; the variant turns only that off.
    assert plain.model.constrain != "off" and variant.model.constrain == "off"
    assert variant.model.completion_kwargs["seed"] == 3
    assert variant.model_dump(exclude={"model"}) == plain.model_dump(exclude={"model"})
    with pytest.raises(ConfigError, match="constrain"):
        loop.bench_config("http://127.0.0.1:9/v1", extra=["model.constrain=sometimes"])
    # A loop with a mistaken variant stops before its first stage, not after its rounds.
    mistaken = config.model_copy(update={"eval_variants": {"unconstrained": ["model.constrian=off"]}})
    with pytest.raises(ConfigError, match="constrian"):
        Loop(mistaken, log=lambda line: None).run()
    assert not list((tmp_path / "stages").iterdir())


def test_the_loop_judges_empty_patches_unresolved_unless_its_run_config_says_run(tmp_path: Path):
    from wren.bench.evaluate import judge_config
    from wren.learn.loop import Loop

    def judged(**more) -> str:
        config = LoopConfig(work_dir=str(tmp_path), train_repos=[], heldout_repos=[], **more)
        return judge_config(Loop(config, log=lambda line: None).bench_config()).empty_patches

    assert judged() == "unresolved"
    assert judged(run_config=["bench.eval_empty_patches=run"]) == "run"


def test_held_out_runs_sample_at_the_evaluation_temperature(tmp_path: Path):
    from wren.learn.loop import Loop

    config = LoopConfig(
        work_dir=str(tmp_path), train_repos=[], heldout_repos=[], temperature=0.7, eval_temperature=0.3
    )
    loop = Loop(config, log=lambda line: None)
    assert loop.bench_config("http://127.0.0.1:9/v1").model.temperature == 0.7  # rollouts explore
    held_out = loop.bench_config("http://127.0.0.1:9/v1", temperature=config.eval_temperature)
    assert held_out.model.temperature == 0.3
    assert held_out.model_dump(exclude={"model"}) == loop.bench_config().model_dump(exclude={"model"})


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("PYTHONPATH=src python -m pytest -rA tests/test_a.py::T::test_x 2>&1 | tail -n 40", "test"),
        ('grep -rn "def chunked(" --include="*.py" . | head -n 20', "find"),
        ("nl -ba more_itertools/more.py | sed -n '120,140p'", "read"),
        ("cat setup.py", "read"),
        ("sed -i '90c\\        self.__currsize -= size' src/cachetools/__init__.py", "edit"),
        ("echo dog > pets.md", "edit"),
        ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached", "submit"),
        ("python -c 'import toolz'", "other"),
    ],
)
def test_commands_are_counted_by_the_kind_of_step(command: str, kind: str):
    from wren.learn.data.command_kinds import command_kind

    assert command_kind(command) == kind


def test_kind_counts_cover_every_reply_including_ones_without_an_action():
    from wren.learn.data.command_kinds import KINDS, kind_counts
    from wren.learn.data.episodes import Episode

    replies = [
        "THOUGHT: x\n```bash\ngrep -rn foo .\n```",
        "no block at all",
        "THOUGHT: y\n```bash\ncat a.py\n```",
    ]
    opening = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    messages = opening + [
        m for r in replies for m in ({"role": "assistant", "content": r}, {"role": "user", "content": "o"})
    ]
    episode = Episode("i", messages, "LimitsExceeded", "", opening=len(opening))
    counts = kind_counts([episode, episode])
    assert list(counts) == list(KINDS)
    assert counts["find"] == 2 and counts["read"] == 2 and counts["no action"] == 2
    assert sum(counts.values()) == 2 * len(replies)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-c", "ladder", "work_dir=WORK", "rounds=0"], "learn loop.rounds': Input should be greater"),
        (["-c", "ladder", "-c", "rounds=0"], "learn loop.rounds': Input should be greater"),
        (["-c", "ladder", "work_dir=WORK", "roundz=3"], "unknown config key 'learn loop.roundz'"),
        (["-c", "ladder", "rounds.yaml"], "rounds.yaml is not key=value"),
    ],
)
def test_the_loop_command_takes_key_value_after_its_config(
    tmp_path: Path, arguments: list[str], message: str
):
    import subprocess
    import sys

    work = tmp_path / "work"
    command = [sys.executable, "-m", "wren.cli.main", "learn", "loop"]
    command += [a.replace("WORK", str(work)) for a in arguments]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    # The overrides reach the config (a value out of range, a mistaken key) and nothing runs.
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not work.exists() and not (tmp_path / "wren-ladder").exists()


@pytest.mark.parametrize(
    ("chosen", "models"), [("last", {"base", "round-2"}), ("all", {"base", "round-0", "round-1", "round-2"})]
)
def test_the_held_out_evaluation_measures_the_chosen_models(tmp_path: Path, chosen: str, models: set[str]):
    from wren.learn.loop import Loop

    config = LoopConfig(
        work_dir=str(tmp_path), train_repos=[], heldout_repos=[], rounds=3, evaluate_models=chosen
    )
    loop = Loop(config, log=lambda line: None)
    assert loop._evaluated_models() == models
    # An evaluation that has finished (in a loop run before with other settings) stays in the report.
    assert not loop._evaluated("round-0/L2")
    for seed in config.seeds:
        loop.stages.run(f"eval-round-0-L2-seed-{seed}", lambda: {"resolved": []})
    assert loop._evaluated("round-0/L2")


def test_a_model_served_at_a_url_is_used_as_it_is_and_takes_no_adapter(tmp_path: Path):
    from wren.learn.loop import Loop
    from wren.learn.served_model import ServedModel

    loop = Loop(LoopConfig(work_dir=str(tmp_path), train_repos=[], heldout_repos=[]), log=lambda line: None)
    with loop.serving(ServedModel("http://127.0.0.1:9/v1")) as api_base:
        assert api_base == "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="adapters"):
        loop.serving(ServedModel("http://127.0.0.1:9/v1", ("round-0/adapter.gguf",)))
    tuned = ServedModel("base.gguf", ("round-0/adapter.gguf",))
    assert (
        ServedModel.from_dict(tuned.to_dict()) == tuned and str(tuned) == "base.gguf + round-0/adapter.gguf"
    )
