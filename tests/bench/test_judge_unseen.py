"""The judge on repositories unlike the shipped ones: small repositories that each reproduce one way a
new repository defeats it (an editable install through an import hook, tests that need 2 CPUs, a
conda-only dependency, tests that expect an unroutable address to stay unreachable, labels that
cannot be right), judged for real from local git repositories with an offline wheelhouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wren.bench.evaluate import EvalConfig, evaluate, validate_dataset
from wren.bench.requirements import environment_yml_to_pip

pytestmark = pytest.mark.usefixtures("env_cache")


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _diff(repo: Path, files: dict[str, str]) -> str:
    """The diff that writes `files` over the committed tree, leaving the tree as it was."""
    before = {p: (repo / p).read_text() if (repo / p).exists() else None for p in files}
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "add", "-N", *files)
    diff = _git(repo, "diff", "--", *files)
    for path, text in before.items():
        if text is None:
            _git(repo, "rm", "-q", "--cached", path)
            (repo / path).unlink()
        else:
            (repo / path).write_text(text)
    return diff


def make_instance(
    repos: Path, name: str, base: dict[str, str], fix: dict[str, str], tests: dict[str, str], **fields: Any
) -> dict[str, Any]:
    """A repository `wren-fixtures/<name>` at `base`, and an instance whose gold patch is `fix` and
    whose test patch adds `tests`."""
    work = repos / f"wren-fixtures__{name}"
    work.mkdir(parents=True)
    for path, text in base.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(textwrap.dedent(text))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "base")
    commit = _git(work, "rev-parse", "HEAD").strip()
    return {
        "instance_id": f"wren-fixtures__{name}-1",
        "repo": f"wren-fixtures/{name}",
        "base_commit": commit,
        "environment_setup_commit": commit,
        "version": "1.0",
        "patch": _diff(work, {p: textwrap.dedent(t) for p, t in fix.items()}),
        "test_patch": _diff(work, {p: textwrap.dedent(t) for p, t in tests.items()}),
        "problem_statement": "",
        **fields,
    }


def _config(tmp_path: Path, env_cache: Path, **more: Any) -> EvalConfig:
    return EvalConfig(
        environment={"environment_class": "local"},
        workspace={"repos": str(tmp_path / "repos"), "env_cache": str(env_cache)},
        **more,
    )


def _judge(inst: dict[str, Any], patch: str, config: EvalConfig, out: Path) -> dict[str, Any]:
    summary = evaluate([inst], {inst["instance_id"]: {"model_patch": patch}}, config, out)
    return summary["instances"][inst["instance_id"]]


# A flat layout: today's setuptools installs it editable through an import hook, not a path entry.
PLUGGY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "pluggy-fixture"
version = "1.0"

[tool.setuptools]
packages = ["plug", "plug.plugins"]
"""
# Finds its plugins by file path, as pylint's checker loader does: the module name comes from the
# sys.path entry the file is under.
PLUGGY_LOADER = """\
import importlib
import os
import sys


def module_for(path):
    path = os.path.realpath(path)
    for entry in sys.path:
        entry = os.path.realpath(entry or os.getcwd())
        if path.startswith(entry + os.sep):
            return os.path.relpath(path, entry)[: -len(".py")].replace(os.sep, ".")
    raise ImportError(f"Unable to find module for {path}")


def plugin_names():
    where = os.path.join(os.path.dirname(__file__), "plugins")
    names = [f for f in sorted(os.listdir(where)) if f.endswith(".py") and f != "__init__.py"]
    return [importlib.import_module(module_for(os.path.join(where, f))).NAME for f in names]
"""


def _pluggy(repos: Path, install: str) -> dict[str, Any]:
    return make_instance(
        repos,
        "pluggy",
        {
            "pyproject.toml": PLUGGY_PYPROJECT,
            "plug/__init__.py": "",
            "plug/loader.py": PLUGGY_LOADER,
            "plug/plugins/__init__.py": "",
            "plug/plugins/alpha.py": "NAME = 'alpah'\n",
            "tests/test_loader.py": "from plug import loader\n\n\ndef test_loads():\n    assert loader.plugin_names()\n",
        },
        {"plug/plugins/alpha.py": "NAME = 'alpha'\n"},
        {
            "tests/test_names.py": "from plug import loader\n\n\n"
            "def test_alpha():\n    assert loader.plugin_names() == ['alpha']\n"
        },
        install=install,
        test_cmd="pytest -rA -p no:cacheprovider tests",
        package="plug",
        FAIL_TO_PASS=["tests/test_names.py::test_alpha"],
        PASS_TO_PASS=["tests/test_loader.py::test_loads"],
    )


def test_editable_install_puts_the_source_tree_on_sys_path(tmp_path, env_cache):
    inst = _pluggy(tmp_path / "repos", "python -m pip install -e .")
    config = _config(tmp_path, env_cache)
    gold = _judge(inst, inst["patch"], config, tmp_path / "g.json")
    assert gold["outcome"] == "resolved", gold
    log = (tmp_path / "g.instances" / inst["instance_id"] / "run_instance.log").read_text()
    assert "--config-settings editable_mode=compat -e ." in log
    empty = _judge(inst, "", config, tmp_path / "e.json")
    assert empty["outcome"] == "unresolved"
    assert empty["tests_status"]["FAIL_TO_PASS"]["failure"] == ["tests/test_names.py::test_alpha"]
    assert empty["tests_status"]["PASS_TO_PASS"]["success"] == ["tests/test_loader.py::test_loads"]
    # A spec that asks for the import hook itself gets it, and the self-check refuses to judge.
    hooked = {**inst, "install": "python -m pip install -e . --config-settings editable_mode=lenient"}
    report = _judge(hooked, inst["patch"], config, tmp_path / "h.json")
    assert report["outcome"] == "error"
    assert "'plug' imports through an import hook" in report["error"], report["error"]
    assert "not from the workspace by path" in report["error"]


# How pylint counts CPUs: cgroup v1's quota (or shares), capped by the CPUs it may run on.
CPU_COUNT = """\
import os
from pathlib import Path

CPU = Path("/sys/fs/cgroup/cpu")


def cpu_count():
    quota = period = None
    if (CPU / "cpu.cfs_quota_us").is_file():
        quota = int((CPU / "cpu.cfs_quota_us").read_text())
    if quota and quota != -1 and (CPU / "cpu.cfs_period_us").is_file():
        period = int((CPU / "cpu.cfs_period_us").read_text())
        share = int(quota / period)
    elif (CPU / "cpu.shares").is_file():
        share = int(int((CPU / "cpu.shares").read_text()) / 1024)
    elif Path("/sys/fs/cgroup/cpu.max").is_file():
        limit, per = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        share = None if limit == "max" else int(int(limit) / int(per))
    else:
        share = None
    count = len(os.sched_getaffinity(0))
    return min(share, count) if share is not None else count
"""


def _host_cpu_count(tmp_path: Path) -> int:
    (tmp_path / "probe.py").write_text(CPU_COUNT + "\nprint(cpu_count())\n")
    return int(subprocess.run([sys.executable, str(tmp_path / "probe.py")], capture_output=True, text=True,
                              check=True).stdout)  # fmt: skip


def test_tests_see_the_specs_cpus_and_a_skipped_pass_to_pass_is_an_error(tmp_path, env_cache):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine has one CPU: no view of it shows two")
    inst = make_instance(
        tmp_path / "repos",
        "cores",
        {
            "cores/__init__.py": "",
            "cores/count.py": CPU_COUNT,
            "cores/jobs.py": "def plan(n):\n    return list(range(n - 1))\n",
            "tests/test_parallel.py": "import pytest\nfrom cores.count import cpu_count\n\n\n"
            "def test_parallel():\n    if cpu_count() < 2:\n        pytest.skip('Need 2 or more cores')\n",
        },
        {"cores/jobs.py": "def plan(n):\n    return list(range(n))\n"},
        {
            "tests/test_jobs.py": "from cores.jobs import plan\n\n\ndef test_plan():\n    assert plan(2) == [0, 1]\n"
        },
        test_cmd="python -m pytest -rA -p no:cacheprovider tests",
        FAIL_TO_PASS=["tests/test_jobs.py::test_plan"],
        PASS_TO_PASS=["tests/test_parallel.py::test_parallel"],
    )
    two = _config(tmp_path, env_cache, specs={"wren-fixtures/cores": {"cpus": 2}})
    report = _judge(inst, inst["patch"], two, tmp_path / "two.json")
    assert report["outcome"] == "resolved", report
    assert report["isolation"] == {"network": "cut", "cpus": 2}
    if _host_cpu_count(tmp_path) >= 2:
        pytest.skip("this host's cgroup files already show 2 CPUs: the skip cannot be shown")
    report = _judge(inst, inst["patch"], _config(tmp_path, env_cache), tmp_path / "host.json")
    assert report["outcome"] == "error"
    assert report["error"] == (
        "PASS_TO_PASS skipped in this environment: tests/test_parallel.py::test_parallel "
        "(pytest: Need 2 or more cores)"
    )


def test_environment_yml_names_and_conda_only_packages():
    pip, skipped = environment_yml_to_pip(
        "dependencies:\n  - matplotlib-base>=3.3\n  - iris\n  - hdf5\n  - conda-forge::numpy=1.23\n  - cdms2\n"
    )
    assert pip == ["matplotlib>=3.3", "scitools-iris", "numpy==1.23.*", "cdms2"]
    assert skipped == ["hdf5"]


def test_what_pip_cannot_install_is_left_out_with_a_note(tmp_path, env_cache):
    env_yml = "name: t\ndependencies:\n  - python\n  - pytest\n  - hdf5\n  - wren-fixture-conda-only\n"
    inst = make_instance(
        tmp_path / "repos",
        "condaish",
        {
            "environment.yml": env_yml,
            "setup.py": "from setuptools import setup\nsetup(name='condaish', packages=['condaish'])\n",
            "condaish/__init__.py": "def half(x):\n    return x // 2\n",
            "tests/test_half.py": "from condaish import half\n\n\ndef test_even():\n    assert half(4) == 2\n",
        },
        {"condaish/__init__.py": "def half(x):\n    return x / 2\n"},
        {
            "tests/test_odd.py": "from condaish import half\n\n\ndef test_odd():\n    assert half(3) == 1.5\n",
            "tests/test_plugin.py": "import wren_fixture_conda_only\n\n\ndef test_plugin():\n    pass\n",
        },
        install="python -m pip install -e .",
        test_cmd="python -m pytest -rA -p no:cacheprovider",
        FAIL_TO_PASS=["tests/test_odd.py::test_odd"],
        PASS_TO_PASS=["tests/test_half.py::test_even"],
    )
    config = _config(tmp_path, env_cache, specs={"wren-fixtures/condaish": {"packages": "environment.yml"}})
    only = {
        **inst,
        "test_cmd": "python -m pytest -rA -p no:cacheprovider tests/test_odd.py tests/test_half.py",
    }
    report = _judge(only, inst["patch"], config, tmp_path / "g.json")
    assert report["outcome"] == "resolved", report
    assert report["not_honoured"] == [
        "environment.yml entry not installed: hdf5",
        "environment.yml entry not installed: wren-fixture-conda-only",
    ]
    # A test that imports what was left out cannot be judged here: error, naming it.
    plugin = {**inst, "PASS_TO_PASS": [*inst["PASS_TO_PASS"], "tests/test_plugin.py::test_plugin"]}
    report = _judge(plugin, inst["patch"], config, tmp_path / "p.json")
    assert report["outcome"] == "error"
    assert report["error"] == (
        "the tests import what the environment could not install (left out of environment.yml's "
        "translation): wren-fixture-conda-only"
    )


TARPIT_TEST = """\
import os
import socket

import pytest


def test_tarpit_stays_unreachable():
    with pytest.raises(OSError):
        socket.create_connection(("10.255.255.1", int(os.environ.get("TARPIT_PORT", "80"))), timeout=1)
"""
# Run in a network namespace the test makes: 10.255.255.1 is given to its loopback and answers there,
# as something answered it on the host where the cause was found; the judge's own namespace must
# still make it unreachable.
NAMESPACE_SCRIPT = """\
import json, socket, subprocess, sys
from pathlib import Path
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "10.255.255.1/32", "dev", "lo"], check=True)
server = socket.socket()
server.bind(("10.255.255.1", 80))
server.listen(16)
socket.create_connection(("10.255.255.1", 80), timeout=5).close()  # the trap is real here
from wren.bench.evaluate import EvalConfig, evaluate
inst, config, out = json.loads(sys.argv[1]), EvalConfig(**json.loads(sys.argv[2])), Path(sys.argv[3])
for kind, network in (("cut", False), ("open", True)):
    summary = evaluate([inst], {inst["instance_id"]: {"model_patch": inst["patch"]}},
                       config.model_copy(update={"network": network}), out / f"{kind}.json")
    print(json.dumps({kind: summary["instances"][inst["instance_id"]]}))
"""


def test_tests_reach_no_address_but_loopback(tmp_path, env_cache):
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("needs ip and unshare to make a network namespace for the test")
    outer = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    if subprocess.run([*outer, "true"], capture_output=True).returncode != 0:
        pytest.skip("no network namespaces here")
    inst = make_instance(
        tmp_path / "repos",
        "tarpit",
        {"tarpit/__init__.py": "TIMEOUT = None\n", "tests/test_base.py": "def test_base():\n    pass\n"},
        {"tarpit/__init__.py": "TIMEOUT = 1\n"},
        {"tests/test_tarpit.py": TARPIT_TEST},
        test_cmd="python -m pytest -rA -p no:cacheprovider tests",
        FAIL_TO_PASS=["tests/test_tarpit.py::test_tarpit_stays_unreachable"],
        PASS_TO_PASS=["tests/test_base.py::test_base"],
    )
    config = _config(tmp_path, env_cache).model_dump()
    (tmp_path / "script.py").write_text(NAMESPACE_SCRIPT)
    proc = subprocess.run(
        [*outer, sys.executable, str(tmp_path / "script.py"), json.dumps(inst), json.dumps(config), str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {
        k: v for line in proc.stdout.splitlines() if line.startswith("{") for k, v in json.loads(line).items()
    }
    assert reports["cut"]["outcome"] == "resolved", reports["cut"]
    assert reports["cut"]["isolation"]["network"] == "cut"
    # With the network allowed the address answers, and the test's expectation fails.
    assert reports["open"]["outcome"] == "unresolved", reports["open"]
    assert reports["open"]["isolation"]["network"] == "allowed"


def test_validate_flags_labels_that_cannot_be_right(tmp_path, env_cache):
    # The FAIL_TO_PASS test passes before the fix, and the test the fix adds fails even with it.
    inst = make_instance(
        tmp_path / "repos",
        "labels",
        {
            "lab/__init__.py": "def double(x):\n    return x * 2\n",
            "tests/test_old.py": "def test_old():\n    pass\n",
        },
        {"lab/__init__.py": "def double(x):\n    return x + x\n"},
        {
            "tests/test_round.py": "from lab import double\n\n\ndef test_round():\n    assert double(2) == 4\n",
            "tests/test_new.py": "from lab import double\n\n\ndef test_new():\n    assert double('a') == 'aa!'\n",
        },
        test_cmd="python -m pytest -rA -p no:cacheprovider tests",
        FAIL_TO_PASS=["tests/test_round.py::test_round", "tests/test_new.py::test_new"],
        PASS_TO_PASS=["tests/test_old.py::test_old"],
    )
    result = validate_dataset([inst], _config(tmp_path, env_cache), tmp_path / "v" / "v.json")
    row = result["instances"][inst["instance_id"]]
    assert row["labels"] == [
        "FAIL_TO_PASS passes without the fix: tests/test_round.py::test_round",
        "FAIL_TO_PASS fails with the fix: tests/test_new.py::test_new",
    ]
    assert result["per_repo"]["wren-fixtures/labels"] == {
        "instances": 1, "gold_resolved": 0, "empty_resolved": 0, "gold_error": 0, "empty_error": 0,
        "labels_flagged": 1,
        "reasons": {
            "label: FAIL_TO_PASS passes without the fix": [inst["instance_id"]],
            "label: FAIL_TO_PASS fails with the fix": [inst["instance_id"]],
        },
    }  # fmt: skip
    from rich.console import Console

    from wren.cli.evaluate import trust_table_view

    console = Console(record=True, width=150)
    console.print(trust_table_view(result["per_repo"]))
    text = console.export_text()
    assert "wren-fixtures/labels" in text and "label: FAIL_TO_PASS fails with the fix (1)" in text


def test_without_namespaces_the_report_says_the_network_was_not_cut(tmp_path, monkeypatch):
    from wren.bench.isolation import isolation

    monkeypatch.setenv("PATH", str(tmp_path))  # a host without unshare
    iso = isolation(cut_network=True, cpus=0, scratch=tmp_path / "s")
    assert not iso.network_cut and iso.wrap("echo hi") == "echo hi"
    assert iso.notes == ["network not cut (no network namespace: unshare is not installed)"]


def test_offline_check_reads_the_error_not_the_report_around_it():
    from wren.bench.offline import needing_network

    refused = (
        "E   requests.exceptions.ConnectionError: HTTPConnectionPool(host='{}', port=80): Max retries "
        "exceeded with url: / (Caused by NewConnectionError('...: Failed to establish a new connection: "
        "[Errno 111] Connection refused'))\n"
    )
    output = (
        "____ test_far ____\n    env = {'no_proxy': '127.0.0.1,localhost'}\n" + refused.format("10.255.255.1")
        + "____ test_near ____\n    url = 'http://example.org/'\n" + refused.format("127.0.0.1")
    )  # fmt: skip
    assert needing_network(output, ["t.py::test_far", "t.py::test_near"]) == ["t.py::test_far"]
