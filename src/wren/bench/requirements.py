"""What an instance's environment installs, read from its repository: the requirements files of its
SWE-bench spec (at the environment set-up commit, `-r` includes followed), `environment.yml`
translated for pip, and, for repositories without a spec, their test requirements detected.

SWE-bench's harness downloads these files from GitHub; here they come from the local repository,
with the same paths (`MAP_REPO_TO_REQS_PATHS`, `MAP_REPO_TO_ENV_YML_PATHS`) and the same cleaning.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from wren.bench.repos import WorkspaceError

# Lines SWE-bench leaves out of requirements files: the package itself and comments.
_EXCLUDED_PREFIXES = ("-e .", "#", ".[test")
# conda packages with no pip counterpart (compilers, native libraries, conda's own tools).
# (Others are found when pip cannot install them, and left out then: see envs.)
_CONDA_ONLY = re.compile(
    r"^(python|pip|_.*|.*-compiler|c-compiler|cxx-compiler|gxx.*|gcc.*|gfortran.*|libgcc.*|libstdcxx.*|"
    r"mkl.*|blas|libblas|liblapack|openblas|cudatoolkit|nodejs|make|graphviz|pandoc|conda.*|"
    r"lib[a-z0-9_-]*|hdf5|netcdf-c|zlib|proj|geos|cairo|ffmpeg|openssl|sqlite|tk|xz)$"
)
# conda names that pip knows under another name (conda-forge's feedstock names).
_CONDA_TO_PIP = {
    "pytorch": "torch",
    "pyqt": "PyQt5",
    "py-opencv": "opencv-python",
    "iris": "scitools-iris",
    "pytables": "tables",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "ruamel_yaml": "ruamel.yaml",
}
# conda-forge splits some packages into `<name>-base` (without optional extras); pip has `<name>`.
_BASE_SUFFIX = "-base"
_TEST_EXTRAS = ("test", "tests", "testing", "dev")
_TEST_REQUIREMENT_FILES = (
    "requirements-test.txt",
    "requirements_test.txt",
    "requirements-tests.txt",
    "test-requirements.txt",
    "test_requirements.txt",
    "requirements-dev.txt",
    "requirements_dev.txt",
    "dev-requirements.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
    "requirements/testing.txt",
    "requirements/dev.txt",
)


def _show(repo: Path, commit: str, path: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True, timeout=120
    )
    return proc.stdout if proc.returncode == 0 else None


def read_requirements(repo: Path, commit: str, paths: list[str]) -> tuple[str, str]:
    """(path, text) of the first requirements file of `paths` at `commit`, `-r` includes inlined."""
    for path in paths:
        text = _show(repo, commit, path)
        if text is not None:
            return path, _inline(repo, commit, path, text, seen={path})
    raise WorkspaceError(f"none of the requirements files {', '.join(paths)} exists at commit {commit[:12]}")


def _inline(repo: Path, commit: str, path: str, text: str, seen: set[str]) -> str:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("-r", "--requirement")):
            name = stripped.split(maxsplit=1)[1] if " " in stripped else stripped[2:]
            included = str(PurePosixPath(path).parent / name.strip())
            body = _show(repo, commit, included) if included not in seen else None
            if body is not None:
                lines.append(_inline(repo, commit, included, body, seen | {included}))
            continue
        if stripped and not stripped.startswith(_EXCLUDED_PREFIXES):
            lines.append(stripped)
    text = "\n".join(lines)
    try:
        from swebench.harness.test_spec.python import clean_requirements
    except ImportError:
        return text
    return clean_requirements(text)


def environment_yml_to_pip(text: str) -> tuple[list[str], list[str]]:
    """(pip requirements, entries pip cannot honour) of a conda environment.yml."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise WorkspaceError(f"environment.yml is not valid YAML: {e}") from e
    pip: list[str] = []
    skipped: list[str] = []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            pip += [str(p) for p in dep.get("pip") or [] if not str(p).startswith(_EXCLUDED_PREFIXES)]
            continue
        spec = str(dep).split("::")[-1].strip()  # channel::name
        name, op, rest = re.match(r"^([A-Za-z0-9_.\-]+)\s*([=<>!~]*)\s*(.*)$", spec).groups()  # type: ignore[union-attr]
        if _CONDA_ONLY.match(name.lower()):
            if name.lower() not in ("python", "pip"):
                skipped.append(spec)
            continue
        if name.lower().endswith(_BASE_SUFFIX) and len(name) > len(_BASE_SUFFIX):
            name = name[: -len(_BASE_SUFFIX)]
        name = _CONDA_TO_PIP.get(name.lower(), name)
        version = rest.split("=")[0].strip()  # conda's name=version=build
        if op == "=" and version:
            # conda's single '=' matches a prefix: numpy=1.19 means 1.19.*
            pip.append(f"{name}=={version}" if version.count(".") >= 2 else f"{name}=={version}.*")
        elif op and version:
            pip.append(f"{name}{op}{version}")
        else:
            pip.append(name)
    return pip, skipped


def read_environment_yml(repo: Path, commit: str, paths: list[str]) -> tuple[str, list[str], list[str]]:
    """(path, pip requirements, entries not honoured) of the first environment.yml of `paths`."""
    for path in paths:
        text = _show(repo, commit, path)
        if text is not None:
            try:
                from swebench.harness.test_spec.python import clean_environment_yml

                text = clean_environment_yml(text)
            except ImportError:
                pass
            return (path, *environment_yml_to_pip(text))
    raise WorkspaceError(f"none of {', '.join(paths)} exists at commit {commit[:12]}")


def _extras(checkout: Path) -> set[str]:
    """The optional-dependency groups a checkout declares (pyproject, setup.cfg, setup.py)."""
    found: set[str] = set()
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        try:
            data: dict[str, Any] = tomllib.loads(pyproject.read_text())
            found |= set((data.get("project") or {}).get("optional-dependencies") or {})
            poetry = ((data.get("tool") or {}).get("poetry") or {}).get("extras") or {}
            found |= set(poetry)
        except (tomllib.TOMLDecodeError, AttributeError):
            pass
    setup_cfg = checkout / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(setup_cfg.read_text())
            if parser.has_section("options.extras_require"):
                found |= set(parser.options("options.extras_require"))
        except configparser.Error:
            pass
    setup_py = checkout / "setup.py"
    if setup_py.is_file():
        block = re.search(r"extras_require\s*=\s*\{(.*?)\}", setup_py.read_text(errors="replace"), re.S)
        if block:
            found |= set(re.findall(r"['\"]([A-Za-z0-9_.\-]+)['\"]\s*:", block.group(1)))
    return found


def detect_setup(checkout: Path) -> dict[str, Any]:
    """A default spec for a repository without one: install it with its test extra, its test
    requirements files, and pytest."""
    installable = any((checkout / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg"))
    extras = sorted(e for e in _extras(checkout) if e in _TEST_EXTRAS)
    install = ""
    if installable:
        target = f".[{','.join(extras)}]" if extras else "."
        install = f"python -m pip install -e '{target}'"
    files = [f for f in _TEST_REQUIREMENT_FILES if (checkout / f).is_file()]
    requirements = []
    for name in files:
        text = (checkout / name).read_text(errors="replace")
        requirements += [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.strip().startswith((*_EXCLUDED_PREFIXES, "-r", "-c"))
        ]
    return {
        "install": install,
        "requirements": "\n".join(requirements),
        "pip_packages": ["pytest"],
        "detected_from": [*files, *(f"extra [{e}]" for e in extras)],
    }
