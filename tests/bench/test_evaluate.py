"""The evaluation harness on the fixture repository: gold patches resolve, empty ones do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.peers.containers import require_docker_image
from tests.peers.fixture_repo import build_calc_repo, copies, write_jsonl
from wren.bench.datasets import load_instances
from wren.bench.evaluate import EvalConfig, evaluate, grade, load_predictions
from wren.bench.specs import files_in_patch, instance_spec, parse_pytest
from wren.exceptions import ConfigError

pytestmark = pytest.mark.usefixtures("env_cache")

BAD_PATCH = "diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-a\n+b\n"


@pytest.fixture
def calc(tmp_path):
    inst = build_calc_repo(tmp_path / "repos")
    dataset = write_jsonl(tmp_path / "calc.jsonl", copies(inst, 3))
    return tmp_path, load_instances(dataset)


def _workspace(tmp_path, env_cache, **more):
    return {"repos": str(tmp_path / "repos"), "env_cache": str(env_cache), **more}


def _preds(instances):
    gold, empty, bad = instances
    return {
        gold["instance_id"]: {"instance_id": gold["instance_id"], "model_patch": gold["patch"]},
        empty["instance_id"]: {"instance_id": empty["instance_id"], "model_patch": ""},
        bad["instance_id"]: {"instance_id": bad["instance_id"], "model_patch": BAD_PATCH},
    }


def _check_verdicts(summary, instances):
    gold, empty, bad = (i["instance_id"] for i in instances)
    assert summary["resolved_ids"] == [gold]
    assert summary["unresolved_ids"] == [empty]
    assert summary["patch_failed_ids"] == [bad]
    assert summary["error_ids"] == [] and summary["empty_patch_ids"] == [empty]
    assert summary["instances"][empty]["tests_status"]["FAIL_TO_PASS"]["failure"] == [
        "tests/test_ops.py::test_clamp_high"
    ]
    assert summary["instances"][empty]["tests_status"]["PASS_TO_PASS"]["failure"] == []


def _environment(kind):
    if kind == "docker":
        return {"environment_class": "docker", "image": require_docker_image()}
    if kind == "sandbox":
        from tests.environments.test_sandbox import _bwrap_works

        if _bwrap_works():
            pytest.skip(_bwrap_works())
    return {"environment_class": kind}


@pytest.mark.parametrize("kind", ["local", "sandbox", "docker"])
def test_gold_resolves_empty_does_not_bad_patch_fails(calc, kind, env_cache):
    tmp_path, instances = calc
    config = EvalConfig(environment=_environment(kind), workspace=_workspace(tmp_path, env_cache), workers=3)
    summary = evaluate(instances, _preds(instances), config, tmp_path / "out" / "report.json")
    _check_verdicts(summary, instances)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["resolved_instances"] == 1 and on_disk["per_repo"]["wren-fixtures/calc"]["total"] == 3
    per_instance = tmp_path / "out" / "report.instances" / instances[0]["instance_id"]
    assert json.loads((per_instance / "report.json").read_text())[instances[0]["instance_id"]]["resolved"]
    assert "PASSED tests/test_ops.py::test_clamp_high" in (per_instance / "test_output.txt").read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in html and "Patch failed" in html and "wren-fixtures/calc" in html


def test_cli_eval_end_to_end(calc, env_cache):
    tmp_path, instances = calc
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(_preds(instances)))
    out = tmp_path / "cli" / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "eval", "--predictions", str(preds),
         "--dataset", str(tmp_path / "calc.jsonl"), "--repos", str(tmp_path / "repos"), "--env", "local",
         "--workers", "2", "-c", f"bench.workspace.env_cache={env_cache}", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "resolved 1/3" in proc.stderr
    _check_verdicts(
        json.loads(out.read_text()) | {"instances": json.loads(out.read_text())["instances"]}, instances
    )


def test_test_timeout_is_an_error_verdict(calc, env_cache):
    tmp_path, instances = calc
    slow = {**instances[0], "test_cmd": "sleep 30"}
    config = EvalConfig(
        environment={"environment_class": "local"}, workspace=_workspace(tmp_path, env_cache), timeout=1
    )
    summary = evaluate([slow], {slow["instance_id"]: {"model_patch": ""}}, config, tmp_path / "t.json")
    assert summary["error_ids"] == [slow["instance_id"]]
    assert "timed out after 1 s" in summary["instances"][slow["instance_id"]]["error"]


def test_a_timed_out_instance_is_judged_again_alone_when_asked(calc, env_cache):
    tmp_path, instances = calc
    gold = instances[0]
    marker = tmp_path / "slow-once"
    # Slow on the first try only (as a suite is while it shares the machine), then as it is.
    slow_once = {
        **gold,
        "test_cmd": f"test -f {marker} || {{ touch {marker}; sleep 30; }}; {gold['test_cmd']}",
    }
    hangs = {**instances[1], "patch": gold["patch"], "test_cmd": "sleep 30"}
    preds = {i["instance_id"]: {"model_patch": gold["patch"]} for i in (slow_once, hangs)}
    config = EvalConfig(
        environment={"environment_class": "local"},
        workspace=_workspace(tmp_path, env_cache),
        timeout=2,
        retry_timeout=8,
        workers=2,
    )
    summary = evaluate([slow_once, hangs], preds, config, tmp_path / "t.json")
    assert summary["resolved_ids"] == [slow_once["instance_id"]]
    assert summary["error_ids"] == [hangs["instance_id"]]
    first, second = (summary["instances"][i["instance_id"]] for i in (slow_once, hangs))
    assert first["first_try"] == "tests timed out after 2 s" and "error" not in first
    assert (
        second["first_try"] == "tests timed out after 2 s" and second["error"] == "tests timed out after 8 s"
    )


def test_empty_patches_unresolved_without_running_tests_when_asked(calc, env_cache):
    tmp_path, instances = calc
    # Tests that would time out: run, the empty patch is an error verdict (the test above).
    slow = {**instances[0], "test_cmd": "sleep 30"}
    gold = instances[1]
    config = EvalConfig(
        environment={"environment_class": "local"},
        workspace=_workspace(tmp_path, env_cache),
        timeout=1,
        empty_patches="unresolved",
    )
    preds = {
        slow["instance_id"]: {"model_patch": "  \n"},
        gold["instance_id"]: {"model_patch": gold["patch"]},
    }
    summary = evaluate([slow, gold], preds, config, tmp_path / "e.json")
    assert summary["unresolved_ids"] == [slow["instance_id"]] and summary["resolved_ids"] == [
        gold["instance_id"]
    ]
    assert summary["empty_patch_ids"] == [slow["instance_id"]]
    entry = summary["instances"][slow["instance_id"]]
    assert entry["tests_run"] is False and "tests_status" not in entry
    assert not (tmp_path / "e.instances" / slow["instance_id"] / "test_output.txt").exists()
    assert (
        "unresolved without running"
        in (tmp_path / "e.instances" / slow["instance_id"] / "run_instance.log").read_text()
    )


def test_missing_repo_is_an_error_verdict_naming_it(calc, env_cache):
    tmp_path, instances = calc
    other = {**instances[0], "repo": "someone/else"}
    config = EvalConfig(environment={"environment_class": "local"}, workspace=_workspace(tmp_path, env_cache))
    summary = evaluate([other], {other["instance_id"]: {"model_patch": ""}}, config, tmp_path / "m.json")
    assert "no git repository for someone/else" in summary["instances"][other["instance_id"]]["error"]


def test_predictions_formats_and_errors(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"a": {"model_patch": "x"}}))
    (tmp_path / "p.jsonl").write_text(json.dumps({"instance_id": "a", "model_patch": "x"}) + "\n")
    assert load_predictions(tmp_path / "p.json")["a"]["model_patch"] == "x"
    assert load_predictions(tmp_path / "p.jsonl")["a"]["model_patch"] == "x"
    (tmp_path / "bad.json").write_text(json.dumps([{"model_patch": "x"}]))
    with pytest.raises(ConfigError, match="no instance_id"):
        load_predictions(tmp_path / "bad.json")


def test_coloured_pytest_output_is_parsed_as_plain(tmp_path):
    # A project's own `addopts = "--color=yes"` colours every line pytest writes, names included.
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "--color=yes"\n')
    (tmp_path / "test_c.py").write_text(
        "import pytest\n\nclass TestC:\n    def test_ok(self):\n        pass\n\n"
        "    def test_bad(self):\n        assert 0\n\n@pytest.mark.parametrize('n', [1])\n"
        "def test_p(n):\n    pass\n"
    )
    log = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "\x1b[" in log
    assert parse_pytest(log) == {
        "test_c.py::TestC::test_ok": "PASSED",
        "test_c.py::TestC::test_bad": "FAILED",
        "test_c.py::test_p[1]": "PASSED",
    }


def test_specs_and_parsing():
    log = "tests/a.py::test_x PASSED\nPASSED tests/a.py::test_y\nFAILED tests/a.py::test_z - assert 0\nERROR tests/b.py\n"
    assert parse_pytest(log) == {
        "tests/a.py::test_x": "PASSED",
        "tests/a.py::test_y": "PASSED",
        "tests/a.py::test_z": "FAILED",
        "tests/b.py": "ERROR",
    }
    inst = {
        "instance_id": "i",
        "FAIL_TO_PASS": ["tests/a.py::test_z"],
        "PASS_TO_PASS": ["tests/a.py::test_q"],
    }
    status = grade(inst, parse_pytest(log))
    assert status["FAIL_TO_PASS"]["failure"] == ["tests/a.py::test_z"]
    assert status["PASS_TO_PASS"]["failure"] == [
        "tests/a.py::test_q"
    ]  # missing from the log counts as failed
    assert files_in_patch("diff --git a/t/test_a.py b/t/test_a.py\ndiff --git a/data.json b/data.json\n") == [
        "t/test_a.py"
    ]
    with pytest.raises(ConfigError, match="no tests for instance 'i'"):
        instance_spec({"instance_id": "i", "repo": "nobody/nothing", "version": "1"})
    spec = instance_spec(
        {"instance_id": "i", "repo": "o/n", "version": "2", "test_cmd": "pytest"},
        {"o/n": {"2": {"install": "pip install -e ."}}},
    )
    assert spec.test_cmd == "pytest" and spec.install == "pip install -e ."


def test_swebench_specs_when_installed():
    pytest.importorskip("swebench.harness.constants", reason="swebench (the [bench] extra) is not installed")
    inst = {
        "instance_id": "marshmallow-code__marshmallow-1359",
        "repo": "marshmallow-code/marshmallow",
        "version": "3.0",
        "test_patch": "diff --git a/tests/test_fields.py b/tests/test_fields.py\n",
    }
    spec = instance_spec(inst)
    assert spec.test_cmd == "pytest -rA tests/test_fields.py"
    assert spec.log_parser == "swebench" and "pip install" in spec.install


@pytest.fixture
def calc_image(calc):
    """An image with the fixture checkout at /testbed, like SWE-bench's per-instance images."""
    from wren.bench.repos import checkout, find_repo

    base = require_docker_image()
    tmp_path, instances = calc
    repo = checkout(
        find_repo(tmp_path / "repos", "wren-fixtures/calc"), instances[0]["base_commit"], tmp_path / "co"
    )
    tag = f"wren-test-calc:{os.getpid()}"
    name = f"wren-test-build-{os.getpid()}"
    subprocess.run(["docker", "create", "--name", name, base, "true"], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "cp", f"{repo}/.", f"{name}:/testbed"], check=True, capture_output=True)
        subprocess.run(["docker", "commit", name, tag], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@pytest.mark.docker
def test_per_instance_images_without_repos(calc, calc_image):
    tmp_path, instances = calc
    config = EvalConfig(
        environment={"environment_class": "docker"},
        workspace={"image_template": calc_image},
        workers=2,
    )
    gold, empty = instances[0], instances[1]
    preds = {gold["instance_id"]: {"model_patch": gold["patch"]}, empty["instance_id"]: {"model_patch": ""}}
    summary = evaluate([gold, empty], preds, config, tmp_path / "img" / "report.json")
    assert summary["resolved_ids"] == [gold["instance_id"]], summary["instances"]
    assert summary["unresolved_ids"] == [empty["instance_id"]]


def test_swebench_image_names():
    from wren.bench.workspace import WorkspaceConfig, docker_id

    assert docker_id("django__django-11099") == "django_1776_django-11099"
    template = WorkspaceConfig().image_template
    assert template.format(docker_id=docker_id("Org__Repo-1")) == "sweb.eval.x86_64.org_1776_repo-1:latest"
