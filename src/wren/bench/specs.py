"""How to set up and test one instance: install commands, the test command and the log parser.

An instance's own `test_cmd` (synthesized tasks) wins; otherwise the `swebench` package's specs
for its repo and version; otherwise a detected default (install the package with its test
requirements, run FAIL_TO_PASS / PASS_TO_PASS as pytest node ids). On top of either come the
versioned overrides shipped with Wren (`spec_overrides.yaml`: pins that today's package releases
need), then config overrides (`specs: {owner/name: {...}}` or `{owner/name: {version: {...}}}`).
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import functools
import re
import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from wren.bench.datasets import parse_test_list
from wren.exceptions import ConfigError
from wren.validation import StrictModel

# Files in a test patch that are data, not tests (as SWE-bench's harness skips them).
_NON_TEST_SUFFIXES = (
    ".json",
    ".png",
    ".csv",
    ".txt",
    ".md",
    ".jpg",
    ".jpeg",
    ".pkl",
    ".yml",
    ".yaml",
    ".toml",
)
_PYTEST_STATUS = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+)")
_PYTEST_VERBOSE = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
# Terminal escapes (colour, bold): a project's `addopts = "--color=yes"` puts them inside test names.
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class InstanceSpec(StrictModel):
    """What it takes to install and test one instance."""

    python: str = ""
    """Python version the repo wants ('' = whatever the environment has)."""
    packages: str = ""
    """Dependencies: 'requirements.txt', 'environment.yml', or space-separated package names."""
    pip_packages: list[str] = Field(default_factory=list)
    """More packages installed with pip before the repo itself."""
    pre_install: list[str] = Field(default_factory=list)
    """Commands run in the checkout before installing."""
    install: str = ""
    """Command that installs the checkout (e.g. `python -m pip install -e .`)."""
    eval_commands: list[str] = Field(default_factory=list)
    """Commands run before the tests, in the same shell (exports, locale set-up)."""
    test_cmd: str = ""
    """Command that runs the instance's tests, with the test files appended for SWE-bench repos."""
    log_parser: str = "pytest"
    """'pytest' (per-test lines of `pytest -rA`), or 'swebench' (the swebench package's parser for the repo)."""
    requirements_paths: list[str] = Field(default_factory=list)
    """Requirements files tried in order when `packages` is 'requirements.txt' (SWE-bench's paths)."""
    environment_yml_paths: list[str] = Field(default_factory=list)
    """environment.yml files tried in order when `packages` is 'environment.yml'."""
    constraints: list[str] = Field(default_factory=list)
    """pip constraints for every install of the environment (pins such as 'numpy<2')."""
    packages_as_of: str = ""
    """Install dependencies as they stood on this date (YYYY-MM-DD, through pip's
    --uploaded-prior-to; '' = today's releases)."""
    cpus: float = 0
    """CPUs the tests are shown (SWE-bench's `nano_cpus`; 0 = the host's view is left alone)."""
    package: str = ""
    """Import name of the package under test, checked to import from the workspace ('' = detect)."""
    source: str = "swebench"
    """Where the spec came from: 'swebench', 'instance' (its own test_cmd) or 'detected'."""

    @field_validator("packages_as_of")
    @classmethod
    def _a_date(cls, value: str) -> str:
        if value:
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"packages_as_of must be a date, YYYY-MM-DD, or '', not {value!r}") from None
        return value


def files_in_patch(test_patch: str) -> list[str]:
    """Files a test patch touches that hold tests (what SWE-bench passes to the test command)."""
    files = re.findall(r"^diff --git a/.* b/(.*)$", test_patch or "", flags=re.MULTILINE)
    return [f for f in files if not f.endswith(_NON_TEST_SUFFIXES)]


def _swebench_specs(repo: str, version: str) -> dict[str, Any] | None:
    try:
        from swebench.harness.constants import MAP_REPO_VERSION_TO_SPECS
    except ImportError:
        return None
    return MAP_REPO_VERSION_TO_SPECS.get(repo, {}).get(version)


def _swebench_directives(inst: dict[str, Any]) -> list[str]:
    try:
        from swebench.harness.test_spec.python import get_test_directives
    except ImportError:
        return files_in_patch(inst.get("test_patch", ""))
    return list(get_test_directives(inst))


def _merge_version_entries(entry: dict[str, Any], version: str, where: str) -> dict[str, Any]:
    """Keys for all versions (plain keys, and '*' or glob entries), then the exact version's."""
    merged = {k: v for k, v in entry.items() if not isinstance(v, dict)}
    for key, value in entry.items():
        if isinstance(value, dict) and key != version and fnmatch.fnmatchcase(version, key):
            merged.update(value)
    exact = entry.get(version)
    if isinstance(exact, dict):
        merged.update(exact)
    elif exact is not None:
        raise ConfigError(f"config key '{where}.{version}' must be a mapping")
    return merged


def _override(overrides: dict[str, Any], repo: str, version: str, where: str = "specs") -> dict[str, Any]:
    entry = overrides.get(repo) or {}
    if not isinstance(entry, dict):
        raise ConfigError(f"config key '{where}.{repo}' must be a mapping")
    return _merge_version_entries(entry, version, f"{where}.{repo}")


SPEC_OVERRIDES_SCHEMA = 1


@functools.lru_cache(maxsize=8)
def load_spec_overrides(path: str = "") -> dict[str, Any]:
    """The versioned overrides file ('' = the one shipped with Wren): {owner/name: {version|glob: {...}}}."""
    text = (
        Path(path).read_text()
        if path
        else resources.files("wren.bench").joinpath("spec_overrides.yaml").read_text()
    )
    data = yaml.safe_load(text) or {}
    if data.get("schema_version") != SPEC_OVERRIDES_SCHEMA:
        raise ConfigError(
            f"spec overrides {path or 'spec_overrides.yaml'}: 'schema_version' must be {SPEC_OVERRIDES_SCHEMA}, "
            f"not {data.get('schema_version')!r}"
        )
    repos = data.get("repos") or {}
    if not isinstance(repos, dict):
        raise ConfigError(f"spec overrides {path or 'spec_overrides.yaml'}: 'repos' must be a mapping")
    return repos


# SWE-bench's environments resolved its unpinned dependencies in late 2023: the releases after that
# (pandas 2.2, SciPy 1.12 and pytest 8 in late January 2024, docutils 0.21, NumPy 2) change what the
# gold patches' tests see. Instances newer than that get the releases of the year after them.
SWEBENCH_ERA = datetime.date(2024, 1, 15)
_ERA_AFTER_INSTANCE = datetime.timedelta(days=365)


def swebench_era(inst: dict[str, Any]) -> str:
    """The date an instance's dependencies are installed as of: SWE-bench's own era, or a year
    after the instance was made when that is later; '' (today's releases) once that date is not
    past, so an environment's cache key does not change from day to day."""
    era = SWEBENCH_ERA
    created = str(inst.get("created_at") or "")[:10]
    with contextlib.suppress(ValueError):  # no date, or not one: SWE-bench's era
        era = max(era, datetime.date.fromisoformat(created) + _ERA_AFTER_INSTANCE)
    return era.isoformat() if era < datetime.date.today() else ""


def _swebench_data(inst: dict[str, Any], specs: dict[str, Any]) -> dict[str, Any]:
    repo = inst.get("repo", "")
    test_cmd = specs.get("test_cmd", "")
    if isinstance(test_cmd, list):
        test_cmd = " && ".join(test_cmd)
    directives = " ".join(shlex.quote(d) for d in _swebench_directives(inst))
    data: dict[str, Any] = {
        "python": specs.get("python", ""),
        "packages": specs.get("packages", ""),
        "pip_packages": list(specs.get("pip_packages", [])),
        "pre_install": list(specs.get("pre_install", [])),
        "install": specs.get("install", ""),
        "eval_commands": list(specs.get("eval_commands", [])),
        "test_cmd": f"{test_cmd} {directives}".strip(),
        "log_parser": "swebench",
        "source": "swebench",
        "cpus": specs.get("nano_cpus", 0) / 1e9,
        "packages_as_of": swebench_era(inst),
    }
    try:
        from swebench.harness.constants import (
            MAP_REPO_TO_ENV_YML_PATHS,
            MAP_REPO_TO_INSTALL,
            MAP_REPO_TO_REQS_PATHS,
        )
    except ImportError:
        return data
    data["requirements_paths"] = list(MAP_REPO_TO_REQS_PATHS.get(repo, ["requirements.txt"]))
    data["environment_yml_paths"] = list(MAP_REPO_TO_ENV_YML_PATHS.get(repo, ["environment.yml"]))
    if repo in MAP_REPO_TO_INSTALL:  # the harness runs it before the spec's pre_install
        data["pre_install"].insert(0, MAP_REPO_TO_INSTALL[repo])
    return data


def _detected_data(inst: dict[str, Any]) -> dict[str, Any]:
    # The node ids themselves are the directives: pytest runs exactly the tests that decide.
    tests = [*parse_test_list(inst.get("FAIL_TO_PASS")), *parse_test_list(inst.get("PASS_TO_PASS"))]
    files = sorted({t.split("::")[0] for t in tests})
    return {
        "test_cmd": "python -m pytest -rA -p no:cacheprovider " + " ".join(shlex.quote(f) for f in files),
        "log_parser": "pytest",
        "source": "detected",
    }


def instance_spec(
    inst: dict[str, Any], overrides: dict[str, Any] | None = None, *, spec_overrides: str | None = ""
) -> InstanceSpec:
    """The spec of one instance; `spec_overrides` is the versioned overrides file ('' = the shipped
    one, None = none). Raises ConfigError when the instance names no tests to run."""
    repo, version = inst.get("repo", ""), str(inst.get("version", ""))
    specs = None if inst.get("test_cmd") else _swebench_specs(repo, version)
    if inst.get("test_cmd"):
        data: dict[str, Any] = {"test_cmd": inst["test_cmd"], "log_parser": "pytest", "source": "instance"}
    elif specs is not None:
        data = _swebench_data(inst, specs)
    else:
        data = _detected_data(inst)
    for key in ("install", "python", "package"):
        if inst.get(key):
            data[key] = inst[key]
    if spec_overrides is not None:
        data.update(_override(load_spec_overrides(spec_overrides), repo, version, "spec_overrides"))
    data.update(_override(overrides or {}, repo, version))
    if data["source"] == "detected" and data["test_cmd"].rstrip().endswith("cacheprovider"):
        raise ConfigError(
            f"no tests for instance {inst['instance_id']!r} (repo {repo!r}, version {version!r}): it has no "
            "SWE-bench spec, no 'test_cmd' and no FAIL_TO_PASS / PASS_TO_PASS node ids; give it a 'test_cmd' "
            "or set 'specs' in the config"
        )
    from wren.validation import validate

    return validate(InstanceSpec, data, where=f"specs.{repo}")


def parse_pytest(log: str) -> dict[str, str]:
    """Per-test statuses from pytest output: `-rA` summary lines and `-v` lines, coloured or not."""
    statuses: dict[str, str] = {}
    for raw in without_escapes(log).splitlines():
        line = raw.strip()
        match = _PYTEST_STATUS.match(line)
        if match:
            statuses[match.group(2)] = match.group(1)
            continue
        match = _PYTEST_VERBOSE.match(line)
        if match:
            statuses.setdefault(match.group(1), match.group(2))
    return statuses


def without_escapes(log: str) -> str:
    """Test output without terminal escape sequences."""
    return _ESCAPE.sub("", log)


def log_parser(spec: InstanceSpec, inst: dict[str, Any]) -> Callable[[str], dict[str, str]]:
    """A function from test output to {test name: PASSED|FAILED|ERROR|SKIPPED|XFAIL}."""
    if spec.log_parser == "pytest":
        return parse_pytest
    if spec.log_parser != "swebench":
        raise ConfigError(f"config key 'log_parser': unknown parser {spec.log_parser!r} (pytest or swebench)")
    try:
        from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
    except ImportError as e:
        raise ConfigError("the swebench log parsers need: pip install 'wren-agent[bench]'") from e
    parser = MAP_REPO_TO_PARSER.get(inst.get("repo", ""))
    if parser is None:
        return parse_pytest
    # The Python parsers do not read their test_spec argument; building a real one can need network.
    return lambda log: parser(log, None)
