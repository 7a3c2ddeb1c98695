"""How to set up and test one instance: install commands, the test command and the log parser.

An instance's own `test_cmd` (synthesized tasks) wins; otherwise the `swebench` package's specs
for its repo and version; config overrides (`specs: {owner/name: {...}}` or
`{owner/name: {version: {...}}}`) are merged on top of either.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wren.exceptions import ConfigError

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


class InstanceSpec(BaseModel):
    """What it takes to install and test one instance."""

    model_config = ConfigDict(extra="forbid")

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


def _override(overrides: dict[str, Any], repo: str, version: str) -> dict[str, Any]:
    entry = overrides.get(repo) or {}
    if not isinstance(entry, dict):
        raise ConfigError(f"config key 'specs.{repo}' must be a mapping")
    per_version = entry.get(version)
    if isinstance(per_version, dict):
        return per_version
    return {k: v for k, v in entry.items() if not isinstance(v, dict)}


def instance_spec(inst: dict[str, Any], overrides: dict[str, Any] | None = None) -> InstanceSpec:
    """The spec of one instance; raises ConfigError when nothing says how to test it."""
    repo, version = inst.get("repo", ""), str(inst.get("version", ""))
    data: dict[str, Any] = {}
    if inst.get("test_cmd"):
        data = {"test_cmd": inst["test_cmd"], "log_parser": "pytest"}
        if inst.get("install"):
            data["install"] = inst["install"]
    else:
        specs = _swebench_specs(repo, version)
        if specs is not None:
            test_cmd = specs.get("test_cmd", "")
            if isinstance(test_cmd, list):
                test_cmd = " && ".join(test_cmd)
            directives = " ".join(shlex.quote(d) for d in _swebench_directives(inst))
            data = {
                "python": specs.get("python", ""),
                "packages": specs.get("packages", ""),
                "pip_packages": list(specs.get("pip_packages", [])),
                "pre_install": list(specs.get("pre_install", [])),
                "install": specs.get("install", ""),
                "eval_commands": list(specs.get("eval_commands", [])),
                "test_cmd": f"{test_cmd} {directives}".strip(),
                "log_parser": "swebench",
            }
    data.update(_override(overrides or {}, repo, version))
    if not data.get("test_cmd"):
        raise ConfigError(
            f"no test command for instance {inst['instance_id']!r} (repo {repo!r}, version {version!r}): "
            "give the instance a 'test_cmd', set 'specs' in the config, or pip install 'wren-agent[bench]' "
            "for SWE-bench's specs"
        )
    from wren.validation import validate

    return validate(InstanceSpec, data, where=f"specs.{repo}")


def parse_pytest(log: str) -> dict[str, str]:
    """Per-test statuses from pytest output: `-rA` summary lines and `-v` lines."""
    statuses: dict[str, str] = {}
    for raw in log.splitlines():
        line = raw.strip()
        match = _PYTEST_STATUS.match(line)
        if match:
            statuses[match.group(2)] = match.group(1)
            continue
        match = _PYTEST_VERBOSE.match(line)
        if match:
            statuses.setdefault(match.group(1), match.group(2))
    return statuses


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
