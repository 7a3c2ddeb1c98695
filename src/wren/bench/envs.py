"""Python environments for instances on the host: a shared dependency virtualenv per distinct spec
(cached, built once), a thin virtualenv per instance layered on it for its own editable install,
and the allowlisted process environment that builds and test runs get.

Nothing of the host's Python leaks in: the virtualenvs are made without system site-packages from
an interpreter of the spec's version, and commands see only allowlisted variables (no PYTHONPATH,
no PYTHONDONTWRITEBYTECODE), with the instance's `bin` first on a fixed system PATH.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from wren.bench.pythons import find_python
from wren.bench.repos import WorkspaceError
from wren.bench.requirements import read_environment_yml, read_requirements
from wren.bench.specs import InstanceSpec

# Bumped when the way environments are built changes, so old cache entries are not reused.
ENV_FORMAT = 3
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What every command keeps from the host: identity, locale, terminal, temporary directory.
_KEPT = ("HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "SHELL")
# What builds also keep: how this machine gets packages (pip's settings, proxies, certificates)
# and compiles them.
_BUILD_KEPT = (
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS", "CPPFLAGS", "PKG_CONFIG_PATH", "MAKEFLAGS",
)  # fmt: skip
_PROXIES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
# Written in a venv whose installs take the releases of one date (the date, one line).
AS_OF_FILE = "as-of.txt"
_DATED = ("PIP_UPLOADED_PRIOR_TO", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
_SYSTEM_INSTALLERS = ("apt-get ", "apt ", "yum ", "dnf ", "apk ", "brew ")


def clean_environ(
    bin_dirs: list[Path], *, build: bool, network: bool = False, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The allowlisted environment of a build (`build`) or a test run, with `bin_dirs` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k in _KEPT or k.startswith("LC_")}
    if build:
        env |= {k: v for k, v in os.environ.items() if k in _BUILD_KEPT or k.startswith("PIP_")}
    if build or network:
        env |= {k: v for k, v in os.environ.items() if k in _PROXIES}
    env.setdefault("LANG", "C.UTF-8")
    env["PATH"] = os.pathsep.join([*(str(d) for d in bin_dirs), SYSTEM_PATH])
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env | (extra or {})


def env_command(command: str, environ: dict[str, str]) -> str:
    """`command` run by a bash that sees exactly `environ` (whatever the environment passes in)."""
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(environ.items()))
    return f"env -i {assignments} bash --noprofile --norc -c {shlex.quote(command)}"


def run_logged(command: str, *, cwd: Path, env: dict[str, str], timeout: float, log: list[str]) -> None:
    """Run a set-up command on the host; WorkspaceError with its output when it fails."""
    log.append(f"$ {command}")
    try:
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise WorkspaceError(f"set-up command timed out after {timeout:g} s: {command}") from e
    log.append((proc.stdout + proc.stderr)[-4000:])
    if proc.returncode != 0:
        raise WorkspaceError(
            f"set-up command failed ({proc.returncode}): {command}\n{(proc.stdout + proc.stderr)[-2000:]}"
        )


_EDITABLE = re.compile(r"\bpip3?(?:\.\d+)?\s+install\b(?=.*\s(?:-e|--editable)(?:\s|=|$))")


def editable_compat(command: str) -> str:
    """An editable pip install made the way `setup.py develop` made it: the source tree on sys.path
    (setuptools' `compat` mode), not an import hook that knows the package's modules by name (what
    today's setuptools installs for a flat layout, and what tools that find modules by path, such
    as pylint's checker loader, cannot see). Commands that choose a mode themselves are kept."""
    if "editable_mode" in command or not _EDITABLE.search(command):
        return command
    return _EDITABLE.sub(lambda m: f"{m.group(0)} --config-settings editable_mode=compat", command, count=1)


def install(command: str, *, cwd: Path, env: dict[str, str], timeout: float, log: list[str]) -> None:
    """Run an install command, editable installs in compat mode (see `editable_compat`); when an
    editable install fails because the project pins a setuptools older than PEP 660 (no
    `build_editable` hook), build it with a newer setuptools instead, as the pip of SWE-bench's
    images (which fell back to `setup.py develop`) managed."""
    compat = editable_compat(command)
    if compat != command:
        try:
            run_logged(compat, cwd=cwd, env=env, timeout=timeout, log=log)
            return
        except WorkspaceError:
            # A pip too old for --config-settings (Python 3.6's), or a backend without the hook.
            log.append("the compat editable install failed: installing as the spec says")
    try:
        run_logged(command, cwd=cwd, env=env, timeout=timeout, log=log)
    except WorkspaceError as e:
        if "build_editable" not in str(e) or " install " not in f" {command} ":
            raise
        log.append(
            "the build backend has no editable hook: retrying with setuptools>=64, without build isolation"
        )
        run_logged(
            "python -m pip install -q 'setuptools>=64' wheel", cwd=cwd, env=env, timeout=timeout, log=log
        )
        retry = editable_compat(command).replace(" install ", " install --no-build-isolation ", 1)
        run_logged(retry, cwd=cwd, env=env, timeout=timeout, log=log)


def system_installs(commands: list[str]) -> tuple[list[str], list[str]]:
    """(commands to run, system package installs left out: they would change the host)."""
    keep, left_out = [], []
    for command in commands:
        (
            left_out if command.lstrip().startswith(_SYSTEM_INSTALLERS) or " apt-get " in command else keep
        ).append(command)
    return keep, left_out


def base_python() -> str:
    """The interpreter for specs that name no version: the one Wren runs on, outside its venv."""
    return getattr(sys, "_base_executable", None) or sys.executable


def dependency_lists(spec: InstanceSpec, source: Path, commit: str) -> dict[str, Any]:
    """What the shared environment installs: requirements text, plain packages, conda entries left out."""
    out: dict[str, Any] = {"requirements": "", "packages": [], "not_installed": [], "from": ""}
    if spec.packages == "requirements.txt":
        out["from"], out["requirements"] = read_requirements(
            source, commit, spec.requirements_paths or ["requirements.txt"]
        )
    elif spec.packages == "environment.yml":
        out["from"], pip, out["not_installed"] = read_environment_yml(
            source, commit, spec.environment_yml_paths or ["environment.yml"]
        )
        out["requirements"] = "\n".join(pip)
        out["translated"] = True
    elif spec.packages:
        out["packages"] = spec.packages.split()
    return out


def shared_env(
    spec: InstanceSpec,
    deps: dict[str, Any],
    *,
    cache: Path,
    pythons: list[str],
    timeout: float,
    log: list[str],
    failed: dict[str, str],
) -> Path:
    """The shared dependency virtualenv for `spec` in `cache`, built unless already there."""
    python = find_python(spec.python, pythons) if spec.python else base_python()
    key = json.dumps(
        {
            "format": ENV_FORMAT,
            "python": spec.python or python,
            "requirements": deps["requirements"],
            "packages": deps["packages"],
            "pip_packages": spec.pip_packages,
            "constraints": spec.constraints,
            "as_of": spec.packages_as_of,
        },
        sort_keys=True,
    )
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / hashlib.sha256(key.encode()).hexdigest()[:16]
    with open(cache / f"{venv.name}.lock", "w") as lock:
        # One builder per environment; other workers (and processes) wait here, then reuse it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".wren-ready").is_file():
            log.append(f"environment {venv} (cached)")
            _read_left_out(venv, deps)
            return venv
        if venv.name in failed:
            raise WorkspaceError(f"the shared environment {venv} failed to build: {failed[venv.name]}")
        try:
            _build(venv, key, python, spec, deps, timeout=timeout, log=log)
        except (WorkspaceError, subprocess.SubprocessError, OSError) as e:
            failed[venv.name] = str(e)[:2000]
            raise
        return venv


def _build(
    venv: Path,
    key: str,
    python: str,
    spec: InstanceSpec,
    deps: dict[str, Any],
    *,
    timeout: float,
    log: list[str],
) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    log.append(f"building environment {venv} with {python}")
    proc = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise WorkspaceError(f"{python} -m venv failed: {(proc.stdout + proc.stderr)[-1000:]}")
    env = build_environ(venv, spec)
    if spec.constraints:
        (venv / "constraints.txt").write_text("\n".join(spec.constraints) + "\n")
    pip = "python -m pip install -q"
    # The pip a venv is born with can predate the wheels and metadata today's indexes serve.
    run_logged(f"{pip} --upgrade pip", cwd=venv, env=env, timeout=timeout, log=log)
    if spec.packages_as_of:
        _install_as_of(venv, env, spec.packages_as_of, log)
        env = build_environ(venv, spec)
    undated = build_environ(venv, spec, dated=False)
    if deps["requirements"].strip() and deps.get("translated"):
        # Undated: conda gave these packages their native libraries (ecCodes for cfgrib, ...), and
        # on PyPI only later wheels bundle them; the spec's exact pins still hold them back.
        deps["not_installed"] += _install_translated(venv, undated, deps["requirements"], spec, timeout, log)
    elif deps["requirements"].strip():
        (venv / "requirements.txt").write_text(deps["requirements"] + "\n")
        run_logged(f"{pip} -r {venv / 'requirements.txt'}", cwd=venv, env=env, timeout=timeout, log=log)
    if deps["not_installed"]:
        log.append(
            "environment.yml entries pip cannot install (left out): " + ", ".join(deps["not_installed"])
        )
    # An exact pin names its release whatever the date (the spec may pin one newer than it), so
    # exact pins are installed undated.
    exact = [p for p in spec.pip_packages if "==" in p]
    for names, run_env in (
        (deps["packages"], env),
        (exact, undated),
        ([p for p in spec.pip_packages if p not in exact], env),
    ):
        if names:
            quoted = " ".join(shlex.quote(p) for p in names)
            run_logged(f"{pip} {quoted}", cwd=venv, env=run_env, timeout=timeout, log=log)
    (venv / "left-out.txt").write_text("".join(f"{r}\n" for r in deps["not_installed"]))
    (venv / ".wren-ready").write_text(key)


def _install_as_of(venv: Path, env: dict[str, str], date: str, log: list[str]) -> None:
    """Make every later install in `venv` (and its instance venvs) pick the releases of `date`, where
    its pip can (pip 26 and later, on Python 3.9 and later)."""
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    if "--uploaded-prior-to" not in proc.stdout:
        log.append(f"this environment's pip cannot install as of {date}: today's releases")
        return
    (venv / AS_OF_FILE).write_text(date + "\n")
    log.append(
        f"dependencies as they stood on {date} (pip --uploaded-prior-to); extra indexes and find-links "
        "are not read, as they carry no upload times"
    )


def _read_left_out(venv: Path, deps: dict[str, Any]) -> None:
    """What the environment's build left out (pip could not install it), for the report's notes."""
    path = venv / "left-out.txt"
    if path.is_file():
        known = set(deps["not_installed"])
        deps["not_installed"] += [r for r in path.read_text().split("\n") if r and r not in known]


# pip's words for a requirement it cannot install: none on the index, or one that does not build.
_UNAVAILABLE = re.compile(
    r"No matching distribution found for ([A-Za-z0-9_.\-]+)|"
    r"Could not find a version that satisfies the requirement ([A-Za-z0-9_.\-]+)|"
    r"Failed (?:to build|building wheel for) '?([A-Za-z0-9_.\-]+)'?|"
    r"Failed to build installable wheels for some pyproject\.toml based projects \(([^)]+)\)"
)
_REQ_NAME = re.compile(r"^([A-Za-z0-9_.\-]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(spec: InstanceSpec) -> list[str]:
    """The spec's exact pins (`name==version` in pip_packages) not already constrained."""
    constrained = {_canonical(m.group(1)) for c in spec.constraints if (m := _REQ_NAME.match(c))}
    return [p for p in spec.pip_packages if "==" in p and _canonical(p.split("==")[0]) not in constrained]


def _install_translated(
    venv: Path, env: dict[str, str], requirements: str, spec: InstanceSpec, timeout: float, log: list[str]
) -> list[str]:
    """Install what a conda environment.yml translated to, under the spec's pins (so the versions
    chosen suit the ones its pip_packages install next); requirements pip cannot install (conda-only
    packages, ones that do not build) are left out, and returned. Pins that cannot all hold together
    with the file are dropped, with a note in the log."""
    reqs = [line for line in requirements.splitlines() if line.strip()]
    pins = _pins(spec)
    left_out: list[str] = []
    for _ in range(len(reqs) + 2):
        (venv / "requirements.txt").write_text("\n".join(reqs) + "\n")
        command = f"python -m pip install -q -r {venv / 'requirements.txt'}"
        run_env = env
        if pins:
            (venv / "pins.txt").write_text("\n".join([*spec.constraints, *pins]) + "\n")
            run_env = {**env, "PIP_CONSTRAINT": str(venv / "pins.txt")}
        try:
            run_logged(command, cwd=venv, env=run_env, timeout=timeout, log=log)
            return left_out
        except WorkspaceError as e:
            said = str(e)
        names = {
            _canonical(n.strip())
            for m in _UNAVAILABLE.finditer(said)
            for group in m.groups()
            if group
            for n in group.split(",")
        }
        dropped = [r for r in reqs if (m := _REQ_NAME.match(r)) and _canonical(m.group(1)) in names]
        if dropped:
            log.append("pip cannot install (left out): " + ", ".join(dropped))
            left_out += dropped
            reqs = [r for r in reqs if r not in dropped]
        elif pins and ("ResolutionImpossible" in said or "ResolutionTooDeep" in said):
            log.append("the spec's pins conflict with environment.yml: installing it without them")
            pins = []
        else:
            raise WorkspaceError(said)
    raise WorkspaceError("environment.yml: pip kept failing on its requirements")


def build_environ(venv: Path, spec: InstanceSpec, *, dated: bool = True) -> dict[str, str]:
    """The environment of install commands in `venv` (its constraints, and its date unless not
    `dated`, apply to every pip call)."""
    extra = {"VIRTUAL_ENV": str(venv)}
    as_of = venv / AS_OF_FILE
    if dated and as_of.is_file():
        # A release on a local index or in a find-links directory has no upload time, so pip would
        # take it whatever its date: only the main index is read (" " clears what pip.conf sets).
        extra |= dict(zip(_DATED, (as_of.read_text().strip() + "T00:00:00Z", " ", " "), strict=True))
    constraints = venv / "constraints.txt"
    if spec.constraints:
        # The file belongs to the shared venv; an instance venv points at the shared one's.
        extra["PIP_CONSTRAINT"] = str(constraints)
    return clean_environ([venv / "bin"], build=True, extra=extra)


def site_packages(venv: Path) -> Path:
    # Asked of the venv's own interpreter: its Python version may differ from ours.
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def instance_env(base: Path, venv: Path) -> None:
    """A thin venv at `venv` that sees `base`'s packages; what it installs stays its own."""
    subprocess.run([str(base / "bin" / "python"), "-m", "venv", "--without-pip", str(venv)], check=True)
    _launchers(venv)
    (site_packages(venv) / "_wren_shared.pth").write_text(f"{site_packages(base)}\n")
    for name in ("constraints.txt", AS_OF_FILE):
        if (base / name).is_file():
            shutil.copy(base / name, venv / name)
    _wrap_scripts(base, venv)


def _launchers(venv: Path) -> None:
    """Replace the venv's interpreter symlinks with launchers that name the venv as argv[0].

    Tools link to `sys.executable` (tox-current-env's `.tox/py39/bin/python`, as SWE-bench's sphinx
    specs run it); a link to a venv's link loses the venv (Python looks for pyvenv.cfg beside the
    path it was started as), a link to a launcher keeps it.
    """
    bin_dir = venv / "bin"
    links = [p for p in bin_dir.iterdir() if p.name.startswith("python") and p.is_symlink()]
    if not links:
        return
    interpreter = os.path.realpath(links[0])
    launcher = f'#!/bin/bash\nexec -a "{bin_dir / "python"}" "{interpreter}" "$@"\n'
    for link in links:
        link.unlink()
        link.write_text(launcher)
        link.chmod(0o755)


def _wrap_scripts(base: Path, venv: Path) -> None:
    """Make the shared venv's console scripts (pytest, tox, ...) run under the instance's interpreter."""
    python = venv / "bin" / "python"
    for script in (base / "bin").iterdir():
        target = venv / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        with open(script, "rb") as f:
            if b"python" not in f.readline():
                continue
        target.write_text(f'#!/bin/sh\nexec "{python}" "{script}" "$@"\n')
        target.chmod(0o755)
