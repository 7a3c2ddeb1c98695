"""The judge can be trusted: tests run in the instance's own environment (not the host's, even when the
host has the fixed release installed), the environment is checked first, tests that need the network
are errors, and --validate lists the instances where gold or empty patches decide wrongly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.fixture_repo import REPO, build_calc_repo, copies, write_jsonl
from wren.bench.datasets import load_instances
from wren.bench.evaluate import EvalConfig, evaluate, validate_dataset
from wren.bench.pythons import find_python
from wren.bench.repos import WorkspaceError
from wren.bench.requirements import environment_yml_to_pip, read_requirements
from wren.bench.specs import instance_spec, load_spec_overrides
from wren.exceptions import ConfigError

pytestmark = pytest.mark.usefixtures("env_cache")

NET_TEST_PATCH = """diff --git a/tests/test_net.py b/tests/test_net.py
new file mode 100644
--- /dev/null
+++ b/tests/test_net.py
@@ -0,0 +1,5 @@
+import socket
+
+
+def test_download():
+    socket.getaddrinfo("files.wren-fixtures.invalid", 443)
"""


@pytest.fixture
def packaged(tmp_path):
    """The src-layout calc (imports only once installed, no test_cmd: its spec is detected)."""
    inst = build_calc_repo(tmp_path / "repos", packaged=True)
    return tmp_path, inst


def _config(tmp_path, env_cache, **more):
    return EvalConfig(
        environment={"environment_class": "local"},
        workspace={"repos": str(tmp_path / "repos"), "env_cache": str(env_cache)},
        **more,
    )


def _gold_and_empty(inst):
    gold, empty = ({**inst, "instance_id": f"{inst['instance_id']}-{k}"} for k in ("gold", "empty"))
    preds = {gold["instance_id"]: {"model_patch": gold["patch"]}, empty["instance_id"]: {"model_patch": ""}}
    return [gold, empty], preds


def _host_with_fixed_release(tmp_path: Path) -> Path:
    """A virtualenv standing for the host's Python, with the *fixed* calc installed in it."""
    host = tmp_path / "host"
    subprocess.run([sys.executable, "-m", "venv", str(host)], check=True, capture_output=True)
    fixed = tmp_path / "repos" / REPO.replace("/", "__")  # the fixture's work tree is at the fix commit
    subprocess.run(
        [str(host / "bin" / "python"), "-m", "pip", "install", "-q", str(fixed), "pytest"],
        check=True,
        capture_output=True,
        text=True,
    )
    return host


def test_host_with_the_fixed_release_does_not_resolve_the_empty_patch(packaged, env_cache):
    tmp_path, inst = packaged
    host = _host_with_fixed_release(tmp_path)
    site = subprocess.run(
        [str(host / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    leaky = {
        **os.environ,
        "PATH": f"{host / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": site,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # The trap is real: on this "host", the base checkout's new test passes without any fix.
    checkout = tmp_path / "trap"
    subprocess.run(
        ["git", "clone", "-q", str(tmp_path / "repos" / REPO.replace("/", "__")), str(checkout)], check=True
    )
    subprocess.run(["git", "checkout", "-q", inst["base_commit"]], cwd=checkout, check=True)
    subprocess.run(["git", "apply"], input=inst["test_patch"], text=True, cwd=checkout, check=True)
    trap = subprocess.run(["pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=checkout, env=leaky,
                          capture_output=True, text=True)  # fmt: skip
    assert trap.returncode == 0, trap.stdout

    instances, preds = _gold_and_empty(inst)
    dataset = write_jsonl(tmp_path / "d.jsonl", instances)
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    out = tmp_path / "out" / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "eval", "--predictions", str(tmp_path / "preds.json"),
         "--dataset", str(dataset), "--repos", str(tmp_path / "repos"), "--env", "local",
         "-c", f"bench.workspace.env_cache={env_cache}", "-o", str(out)],
        capture_output=True, text=True, timeout=600, env=leaky,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    gold_id, empty_id = (i["instance_id"] for i in instances)
    assert report["resolved_ids"] == [gold_id], report["instances"]
    assert report["unresolved_ids"] == [empty_id]
    assert report["instances"][gold_id]["spec"] == "detected"
    log = (out.parent / "report.instances" / empty_id / "run_instance.log").read_text()
    assert "spec detected: install python -m pip install -e '.[test]'" in log
    assert "/venv/bin/python, runner " in log and "/repo/src/calc/__init__.py" in log


def test_package_importing_from_outside_the_workspace_is_an_error(packaged, env_cache):
    tmp_path, inst = packaged
    inst = {**inst, "install": "true"}  # nothing installs calc: it cannot import from the workspace
    summary = evaluate([inst], {inst["instance_id"]: {"model_patch": inst["patch"]}}, _config(tmp_path, env_cache),
                       tmp_path / "r.json")  # fmt: skip
    error = summary["instances"][inst["instance_id"]]["error"]
    assert summary["error_ids"] == [inst["instance_id"]]
    assert error.startswith("environment check: the package under test 'calc' does not import"), error
    other = {**inst, "package": "json", "instance_id": "json-1"}
    summary = evaluate(
        [other], {"json-1": {"model_patch": ""}}, _config(tmp_path, env_cache), tmp_path / "s.json"
    )
    assert "'json' imports from" in summary["instances"]["json-1"]["error"]
    assert "not from the workspace" in summary["instances"]["json-1"]["error"]


def test_test_needing_the_network_is_an_error_naming_it(packaged, env_cache):
    tmp_path, inst = packaged
    net = {
        **inst,
        "test_patch": inst["test_patch"] + NET_TEST_PATCH,
        "FAIL_TO_PASS": ["tests/test_ops.py::test_clamp_high", "tests/test_net.py::test_download"],
    }
    preds = {net["instance_id"]: {"model_patch": net["patch"]}}
    summary = evaluate([net], preds, _config(tmp_path, env_cache), tmp_path / "n.json")
    report = summary["instances"][net["instance_id"]]
    assert (
        report["outcome"] == "error" and report["error"] == "needs network: tests/test_net.py::test_download"
    )
    assert report["tests_status"]["FAIL_TO_PASS"]["success"] == ["tests/test_ops.py::test_clamp_high"]
    # With --network the failure is the test's own: the name still does not resolve.
    summary = evaluate([net], preds, _config(tmp_path, env_cache, network=True), tmp_path / "m.json")
    assert summary["unresolved_ids"] == [net["instance_id"]]


def test_validate_lists_exactly_the_untrustworthy_instances(packaged, env_cache):
    tmp_path, inst = packaged
    good = {**inst, "instance_id": "calc-good"}
    # FAIL_TO_PASS names a test that passes before the fix: the empty patch resolves it.
    loose = {**inst, "instance_id": "calc-loose", "FAIL_TO_PASS": ["tests/test_ops.py::test_add"]}
    # The gold patch does not fix what the test patch checks.
    wrong = {**inst, "instance_id": "calc-wrong", "patch": ""}
    result = validate_dataset(
        [good, loose, wrong], _config(tmp_path, env_cache, workers=2), tmp_path / "v" / "v.json"
    )
    untrusted = {row["instance_id"]: row for row in result["untrusted"]}
    assert sorted(untrusted) == ["calc-loose", "calc-wrong"]
    assert untrusted["calc-loose"]["reason"].startswith("empty patch resolved")
    assert untrusted["calc-loose"]["tests"] == ["tests/test_ops.py::test_add"]
    assert untrusted["calc-wrong"]["tests"] == ["tests/test_ops.py::test_clamp_high"]
    assert result["instances"]["calc-good"] == {
        "repo": REPO, "gold": "resolved", "empty": "unresolved", "trusted": True, "reason": "", "tests": [],
        "labels": [], "spec": "detected",
    }  # fmt: skip
    assert result["per_repo"][REPO]["gold_resolved"] == 2 and result["per_repo"][REPO]["empty_resolved"] == 1
    assert result["instances"]["calc-loose"]["labels"] == [
        "FAIL_TO_PASS passes without the fix: tests/test_ops.py::test_add"
    ]
    dataset = write_jsonl(tmp_path / "v.jsonl", [good, loose])
    proc = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "eval", "--validate", "--dataset", str(dataset),
         "--repos", str(tmp_path / "repos"), "-c", f"bench.workspace.env_cache={env_cache}",
         "-o", str(tmp_path / "cli" / "v.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "untrusted calc-loose: empty patch resolved" in proc.stderr
    assert "1 of 2 instances can't be trusted" in proc.stderr
    assert "labels calc-loose: FAIL_TO_PASS passes without the fix" in proc.stderr
    assert "label: FAIL_TO_PASS passes without the fix (1): calc-loose" in proc.stderr


def test_missing_interpreter_names_the_version_and_where_it_looked(packaged, env_cache, monkeypatch):
    tmp_path, inst = packaged
    monkeypatch.setenv("WREN_PYTHONS", str(tmp_path / "no-pythons"))
    old = {**inst, "python": "2.4"}
    summary = evaluate(
        [old], {old["instance_id"]: {"model_patch": ""}}, _config(tmp_path, env_cache), tmp_path / "p.json"
    )
    error = summary["instances"][old["instance_id"]]["error"]
    assert "no Python 2.4 interpreter" in error
    assert (
        f"WREN_PYTHONS ({tmp_path / 'no-pythons'})" in error
        and "pyenv (" in error
        and "PATH (python2.4)" in error
    )
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    monkeypatch.setenv("WREN_PYTHONS", os.path.realpath(sys.executable))
    assert os.path.realpath(find_python(version)) == os.path.realpath(sys.executable)
    with pytest.raises(WorkspaceError, match="no Python 2.4"):
        find_python("2.4")


def test_specs_overrides_and_requirements(tmp_path):
    shipped = load_spec_overrides()
    assert "numpy<2" in shipped["pvlib/pvlib-python"]["*"]["constraints"]
    pytest.importorskip("swebench.harness.constants", reason="swebench (the [bench] extra) is not installed")
    pvlib = {"instance_id": "pvlib-1", "repo": "pvlib/pvlib-python", "version": "0.8", "test_patch": ""}
    assert instance_spec(pvlib).constraints == ["numpy<2", "pandas<2.2", "scipy<1.12"]
    assert instance_spec(pvlib, spec_overrides=None).constraints == []
    dicom = {"instance_id": "d", "repo": "pydicom/pydicom", "version": "1.3", "test_patch": ""}
    assert instance_spec(dicom).python == "3.8" and instance_spec(dicom, spec_overrides=None).python == "3.6"
    bad = tmp_path / "o.yaml"
    bad.write_text("repos: {}\n")
    with pytest.raises(ConfigError, match="'schema_version' must be 1"):
        load_spec_overrides(str(bad))
    sqlfluff = {"instance_id": "s", "repo": "sqlfluff/sqlfluff", "version": "0.6", "test_patch": ""}
    assert instance_spec(sqlfluff).requirements_paths == ["requirements_dev.txt"]


def test_requirements_files_and_environment_yml(tmp_path):
    repo = tmp_path / "r"
    (repo / "requirements").mkdir(parents=True)
    (repo / "requirements" / "dev.txt").write_text("-r base.txt\npytest<8\n# a comment\n-e .\n")
    (repo / "requirements" / "base.txt").write_text("numpy>=1.20\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r"], cwd=repo, check=True
    )
    path, text = read_requirements(repo, "HEAD", ["requirements.txt", "requirements/dev.txt"])
    assert path == "requirements/dev.txt" and text.split("\n") == ["numpy>=1.20", "pytest<8"]
    with pytest.raises(WorkspaceError, match="none of the requirements files a.txt"):
        read_requirements(repo, "HEAD", ["a.txt"])
    pip, skipped = environment_yml_to_pip(
        "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.9\n  - numpy=1.19\n  - scipy>=1.5\n"
        "  - conda-forge::cxx-compiler\n  - pytorch=1.8.1\n  - pip\n  - pip:\n    - pytest-cov\n"
    )
    assert pip == ["numpy==1.19.*", "scipy>=1.5", "torch==1.8.1", "pytest-cov"]
    assert skipped == ["cxx-compiler"]


def test_detected_spec_runs_the_node_ids_and_needs_some(tmp_path):
    inst = {
        "instance_id": "x-1",
        "repo": "me/mine",
        "FAIL_TO_PASS": '["t/test_a.py::test_b"]',
        "PASS_TO_PASS": [],
    }
    spec = instance_spec(inst)
    assert spec.source == "detected" and spec.test_cmd.endswith("t/test_a.py")
    assert instance_spec({**inst, "install": "make install"}).install == "make install"
    with pytest.raises(ConfigError, match="no tests for instance 'x-2'"):
        instance_spec({"instance_id": "x-2", "repo": "me/mine", "FAIL_TO_PASS": [], "PASS_TO_PASS": []})


def test_copies_of_packaged_instances_share_one_environment(packaged, env_cache):
    tmp_path, inst = packaged
    instances = load_instances(write_jsonl(tmp_path / "c.jsonl", copies(inst, 2)))
    preds = {i["instance_id"]: {"model_patch": i["patch"]} for i in instances}
    summary = evaluate(instances, preds, _config(tmp_path, env_cache, workers=2), tmp_path / "c" / "r.json")
    assert summary["resolved_instances"] == 2
    logs = [(tmp_path / "c" / "r.instances" / i / "run_instance.log").read_text() for i in preds]
    envs = {path for log in logs for path in re.findall(r"environment (/\S+)", log)}
    assert len(envs) == 1, logs


def test_commands_see_only_allowlisted_variables(monkeypatch, tmp_path):
    from wren.bench.envs import SYSTEM_PATH, clean_environ, env_command

    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/simple")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:2")
    test_env = clean_environ([tmp_path / "bin"], build=False)
    seen = subprocess.run(["bash", "-c", env_command("env", test_env)], capture_output=True, text=True).stdout
    names = {line.split("=", 1)[0] for line in seen.splitlines()}
    assert not names & {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PIP_INDEX_URL", "https_proxy"}
    assert f"PATH={tmp_path / 'bin'}:{SYSTEM_PATH}" in seen.splitlines()
    build_env = clean_environ([tmp_path / "bin"], build=True)
    assert build_env["PIP_INDEX_URL"] == "http://127.0.0.1:1/simple" and "PYTHONPATH" not in build_env
    assert "https_proxy" in clean_environ([], build=False, network=True)


def test_links_to_an_instance_interpreter_keep_its_environment(tmp_path):
    """tox-current-env links .tox/py39/bin/python to sys.executable; the link must stay in the venv."""
    from wren.bench.envs import _launchers

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _launchers(venv)
    (tmp_path / "tox" / "bin").mkdir(parents=True)
    (tmp_path / "tox" / "bin" / "python").symlink_to(venv / "bin" / "python")
    probe = "import sys; print(sys.prefix)"
    for python in (venv / "bin" / "python", tmp_path / "tox" / "bin" / "python"):
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout
        assert out.strip() == str(venv)


def test_network_failures_are_told_from_local_ones():
    from wren.bench.offline import needing_network

    output = (
        "____ test_a ____\nE   ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:8000\n"
        "____ TestX.test_b[1.5] ____\nE   URLError: <urlopen error [Errno -3] Temporary failure in name resolution>\n"
        "____ test_c ____\nE   ConnectionRefusedError: [Errno 111] Connection refused: example.org:443\n"
        "____ test_d ____\nE   assert 1 == 2\n"
    )
    failing = [
        "t.py::test_a",
        "t.py::TestX::test_b[1.5]",
        "t.py::test_c",
        "t.py::test_d",
        "t.py::test_xtest_d",
    ]
    assert needing_network(output, failing) == ["t.py::TestX::test_b[1.5]", "t.py::test_c"]
