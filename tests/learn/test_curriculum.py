"""The hint curriculum's decisions: hints withdrawn after a pass, kept (then regained) while every sample fails."""

from __future__ import annotations

import pytest

from wren.config.loader import validate
from wren.exceptions import ConfigError
from wren.learn.curriculum import (
    CurriculumConfig,
    FamilyState,
    advance,
    at_rung,
    dump,
    load,
    passes_by_family,
    rung_rates,
    start,
    step_all,
)

CONFIG = CurriculumConfig(start_level=4, min_level=1, samples=4, regain_after=2)


@pytest.mark.parametrize(
    ("before", "passes", "after"),
    [
        # a pass withdraws one hint
        (FamilyState(4), 1, FamilyState(3, 0, 4)),
        (FamilyState(3, 1, 4), 4, FamilyState(2, 0, 3)),
        # never below min_level: passing at the floor keeps it there
        (FamilyState(1, 0, 2), 2, FamilyState(1, 0, 1)),
        # every sample failed: the rung is kept, the failures counted
        (FamilyState(3, 0, 4), 0, FamilyState(3, 1, 4)),
        # ...and after regain_after such rounds the hint above comes back
        (FamilyState(3, 1, 4), 0, FamilyState(4, 0, 4)),
        # at L4 there is no hint above to give
        (FamilyState(4, 1), 0, FamilyState(4, 2)),
        # lowest_passed remembers the best shown, even after a hint is regained
        (FamilyState(2, 0, 1), 1, FamilyState(1, 0, 1)),
    ],
)
def test_a_family_moves_by_its_samples(before: FamilyState, passes: int, after: FamilyState):
    assert advance(before, passes, CONFIG) == after


def test_regain_after_one_gives_the_hint_back_at_the_first_round_of_failures():
    config = CONFIG.model_copy(update={"regain_after": 1})
    assert advance(FamilyState(2, 0, 3), 0, config) == FamilyState(3, 0, 3)


def test_rounds_of_passes_walk_a_family_down_the_ladder_and_failures_walk_it_back():
    states = start([{"instance_id": "a"}, {"instance_id": "b"}], CONFIG)
    history = []
    for a_passes, b_passes in [(1, 0), (2, 0), (0, 0), (0, 1), (0, 0)]:
        states = step_all(states, {"a": a_passes, "b": b_passes}, CONFIG)
        history.append((states["a"].level, states["b"].level))
    assert history == [(3, 4), (2, 4), (2, 4), (3, 3), (3, 3)]
    assert load(dump(states)) == states


def test_passes_are_counted_per_family_over_samples_and_rungs():
    tasks = [{"instance_id": "f.L4", "family": "f"}, {"instance_id": "g.L2", "family": "g"}]
    assert passes_by_family(["f.L4", "f.L4", "other", "g.L3"], tasks) == {"f": 2, "g": 0}


def test_rung_rates_are_over_the_families_tried_at_each_rung():
    states = {"a": FamilyState(4), "b": FamilyState(4), "c": FamilyState(2)}
    rates = rung_rates(states, {"a": 2, "b": 0, "c": 4}, samples=4)
    assert rates["L4"] == {"families": 2, "runs": 8, "resolved": 2, "rate": 0.25, "pass_any": 0.5}
    assert rates["L2"]["rate"] == 1.0 and list(rates) == ["L2", "L4"]


def test_a_rung_copy_has_its_own_id_and_names_its_family():
    task = {
        "instance_id": "o__r-1",
        "statement_l0": "It breaks.",
        "statement_l1": "test_x fails",
        "mutation": {
            "file": "m.py",
            "function": "f",
            "line": 3,
            "now": ["    return 1"],
            "must": ["    return 2"],
        },
    }
    l4, l2 = at_rung(task, 4), at_rung(task, 2)
    assert (l4["instance_id"], l4["family"], l4["hint_level"]) == ("o__r-1.L4", "o__r-1", 4)
    assert "return 2" in l4["problem_statement"] and "return 2" not in l2["problem_statement"]
    assert at_rung(l4, 3)["instance_id"] == "o__r-1.L3"  # a copy of a copy stays in its family


@pytest.mark.parametrize(
    "data",
    [
        {"min_level": 3, "start_level": 2},
        {"eval_levels": [5]},
        {"demo_levels": []},
        {"samples": 0},
        {"sample": 2},
        {"demo_levels": [3, 4], "demo_rungs": 3},
        {"demo_rungs": 0},
    ],
)
def test_a_curriculum_config_that_cannot_work_is_refused(data):
    with pytest.raises(ConfigError):
        validate(CurriculumConfig, data, where="curriculum")


def test_the_shipped_ladder_recipe_validates_and_is_found_by_name(tmp_path):
    from wren.cli.options import config_data
    from wren.learn.loop import Loop
    from wren.learn.loop_config import LoopConfig, builtin_configs, config_file
    from wren.synth.repos import load_repos

    assert "ladder" in builtin_configs()
    path = config_file("ladder")
    config = validate(LoopConfig, config_data([path, f"work_dir={tmp_path}"]), where="ladder")
    assert config.curriculum is not None and config.export.edit_window is not None
    assert config.sft.max_length == config.export.max_tokens
    assert sorted(config.curriculum.demo_levels) == [1, 2, 3, 4]
    train, heldout, _ = Loop(config, log=lambda line: None).repositories()
    roles = {r.name: r.role for r in load_repos()}
    assert len(train) >= 8 and len(heldout) >= 2
    assert all(roles[n] in ("training", "heldout") for n in config.repo_names)
    # a file of that name here wins over the built-in one; key=value items pass through
    (tmp_path / "ladder").write_text("x: 1")
    assert config_file(str(tmp_path / "ladder")) == str(tmp_path / "ladder")
    assert config_file("rounds=3") == "rounds=3"


def test_a_repository_not_in_the_list_is_named(tmp_path):
    from wren.learn.loop import Loop
    from wren.learn.loop_config import LoopConfig

    config = LoopConfig(work_dir=str(tmp_path), repo_list="builtin", repo_names=["toolz", "nosuchrepo"])
    with pytest.raises(ConfigError, match="nosuchrepo"):
        Loop(config, log=lambda line: None).repositories()
    with pytest.raises(ConfigError, match="not both"):
        validate(LoopConfig, {"work_dir": "w", "repo_list": "builtin", "train_repos": ["x"]}, where="loop")


def test_a_base_model_at_a_url_needs_its_training_directory():
    from wren.learn.loop_config import LoopConfig

    with pytest.raises(ConfigError, match="base_training_dir"):
        validate(LoopConfig, {"work_dir": "w", "base_model": "http://127.0.0.1:9/v1"}, where="loop")
    LoopConfig(work_dir="w", base_model="http://127.0.0.1:9/v1", base_training_dir="models/base")


def test_the_cli_reads_the_shipped_recipe_by_name_and_names_a_bad_override(tmp_path):
    from tests.test_cli_run import wren

    result = wren("learn", "loop", "-c", "ladder", "-c", f"work_dir={tmp_path}", "-c", "curriculum.samples=0")
    assert result.returncode != 0
    assert "curriculum.samples" in result.stderr
    assert not (tmp_path / "stages").exists()  # refused before any stage ran
    unknown = wren("learn", "loop", "-c", str(tmp_path / "nosuch.yaml"))
    assert unknown.returncode != 0 and "no built-in loop config of that name (ladder" in unknown.stderr
