"""The list of repositories tasks are synthesized from: valid, enough of each role, bad files named."""

from __future__ import annotations

from pathlib import Path

import pytest

from wren.exceptions import ConfigError
from wren.synth.repos import load_repos


def test_the_built_in_list_has_training_and_held_out_repositories():
    training, heldout = load_repos(role="training"), load_repos(role="heldout")
    assert len(training) >= 8 and len(heldout) >= 2
    assert "more-itertools" in {r.name for r in heldout}
    assert not {r.name for r in training} & {r.name for r in heldout}
    for repo in training + heldout:
        assert repo.spec == f"{repo.name}=={repo.version}" and repo.why
        if repo.measured is not None:
            assert repo.measured.validated <= repo.measured.tried


def test_a_bad_list_is_an_error_that_says_why(tmp_path: Path):
    bad = tmp_path / "repos.yaml"
    bad.write_text("repos:\n  - {name: a, version: '1', role: training, why: x, colour: red}\n")
    with pytest.raises(ConfigError, match="colour"):
        load_repos(bad)
    bad.write_text("repos:\n  - {name: a, version: '1', role: trainer, why: x}\n")
    with pytest.raises(ConfigError, match="role"):
        load_repos(bad)
    twice = "  - {name: a, version: '1', role: training, why: x}\n"
    bad.write_text("repos:\n" + twice + twice)
    with pytest.raises(ConfigError, match="listed twice: a"):
        load_repos(bad)
