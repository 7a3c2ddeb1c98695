"""A workspace per instance: an environment whose working directory is a clean checkout of the
instance's repo at its base commit, with the repo's dependencies installed.

Two sources: a directory of local git repositories (`repos`), checked out on the host and used
directly (local, sandbox) or mounted (docker, podman, apptainer); or, without `repos`, a container
image per instance (`image_template`, SWE-bench's `sweb.eval.x86_64.*` images) with the repo in it.
On the host, dependencies go into a virtualenv per (repo, version) built once and shared, and each
instance gets a thin virtualenv layered on it for its own editable install.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from wren.bench.repos import WorkspaceError, checkout, find_repo
from wren.bench.specs import InstanceSpec
from wren.exceptions import ConfigError

HOST_KINDS = ("local", "sandbox")
CONTAINER_KINDS = ("docker", "podman", "apptainer", "singularity")


class WorkspaceConfig(BaseModel):
    """Where instance checkouts come from and how they are set up."""

    model_config = ConfigDict(extra="forbid")

    repos: str = ""
    """Directory of git repositories (`owner__name` or `owner+name`, bare or not)."""
    image_template: str = "sweb.eval.x86_64.{docker_id}:latest"
    """Image per instance when `repos` is not set; {instance_id}, {docker_id}, {repo}, {version} are filled in."""
    root: str = ""
    """Directory for checkouts ('' = a temporary directory per instance)."""
    env_cache: str = ""
    """Directory for the shared dependency virtualenvs ('' = ~/.cache/wren/envs)."""
    setup: bool = True
    """Install the repo's dependencies and the repo itself before use."""
    container_repo_dir: str = "/testbed"
    """Where the repo is inside a container."""
    setup_timeout: float = 1800.0
    """Seconds the set-up of one instance (or one shared virtualenv) may take."""
    keep: bool = False
    """Keep checkouts after use (for debugging)."""


@dataclass
class Workspace:
    """An open workspace: the environment and the repo's directory as commands see it."""

    env: Any
    repo_dir: str
    instance_id: str
    setup_log: list[str] = field(default_factory=list)


def docker_id(instance_id: str) -> str:
    """The instance id as SWE-bench spells it in image names."""
    return instance_id.replace("__", "_1776_").lower()


def _kind(env_config: dict[str, Any]) -> str:
    return str(env_config.get("environment_class") or "local")


def check_workspace_config(env_config: dict[str, Any], config: WorkspaceConfig) -> None:
    """Fail before any instance runs when the environment kind cannot get a workspace."""
    from wren.environments import environment_config

    environment_config(env_config)  # bad values fail before the first instance
    kind = _kind(env_config)
    if not config.repos and kind not in CONTAINER_KINDS:
        raise ConfigError(
            f"the {kind} environment needs --repos DIR (a directory of git repositories); "
            "without it, instances run in per-instance container images (--env docker)"
        )
    if config.repos and not Path(config.repos).is_dir():
        raise ConfigError(f"--repos {config.repos} is not a directory")


@contextlib.contextmanager
def open_workspace(
    inst: dict[str, Any],
    spec: InstanceSpec,
    env_config: dict[str, Any],
    config: WorkspaceConfig,
) -> Iterator[Workspace]:
    """Check out, start the environment, set up; close and clean everything on the way out."""
    from wren.environments import get_environment

    kind = _kind(env_config)
    env_config = dict(env_config)
    instance_dir: Path | None = None
    log: list[str] = []
    repo_dir = config.container_repo_dir
    host_setup = config.setup and kind in HOST_KINDS
    try:
        if config.repos:
            source = find_repo(config.repos, inst.get("repo", ""))
            instance_dir = _instance_dir(config, inst["instance_id"])
            host_repo = checkout(source, inst.get("base_commit") or "HEAD", instance_dir / "repo")
            if kind in HOST_KINDS:
                repo_dir = str(host_repo)
                env_config.setdefault("cwd", repo_dir)
                if kind == "sandbox":
                    env_config.setdefault("workdir", str(instance_dir))
                if host_setup:
                    env_config["env"] = {
                        **_host_python_env(spec, host_repo, instance_dir, config, log),
                        **env_config.get("env", {}),
                    }
                    if kind == "sandbox" and "VIRTUAL_ENV" in env_config["env"]:
                        # The sandbox shows no host directory it is not told of: the shared venvs
                        # and the interpreter they were made from.
                        venv = Path(env_config["env"]["VIRTUAL_ENV"])
                        shown = [str(_env_cache(config)), *_venv_homes(venv)]
                        env_config["readonly"] = [*env_config.get("readonly", []), *shown]
            elif kind in ("docker", "podman"):
                env_config["volumes"] = [*env_config.get("volumes", []), f"{host_repo}:{repo_dir}"]
                env_config.setdefault("cwd", repo_dir)
            elif kind in ("apptainer", "singularity"):
                env_config["binds"] = [*env_config.get("binds", []), f"{host_repo}:{repo_dir}"]
                env_config.setdefault("cwd", repo_dir)
        else:
            check_workspace_config(env_config, config)
            env_config["image"] = config.image_template.format(
                instance_id=inst["instance_id"],
                docker_id=docker_id(inst["instance_id"]),
                repo=inst.get("repo", ""),
                version=inst.get("version", ""),
            )
            env_config.setdefault("cwd", repo_dir)
        env = get_environment(env_config)
        try:
            if config.setup and kind in CONTAINER_KINDS and config.repos:
                _container_setup(env, spec, config, log)
            yield Workspace(env=env, repo_dir=repo_dir, instance_id=inst["instance_id"], setup_log=log)
        finally:
            env.close()
    finally:
        if instance_dir is not None and not config.keep:
            shutil.rmtree(instance_dir, ignore_errors=True)


def _instance_dir(config: WorkspaceConfig, instance_id: str) -> Path:
    if config.root:
        root = Path(config.root)
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"wren-{instance_id}.", dir=root))
    return Path(tempfile.mkdtemp(prefix=f"wren-{instance_id}."))


def _run(command: str, *, cwd: Path, env: dict[str, str], timeout: float, log: list[str]) -> None:
    log.append(f"$ {command}")
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    log.append((proc.stdout + proc.stderr)[-4000:])
    if proc.returncode != 0:
        raise WorkspaceError(
            f"set-up command failed ({proc.returncode}): {command}\n{(proc.stdout + proc.stderr)[-2000:]}"
        )


def _container_setup(env: Any, spec: InstanceSpec, config: WorkspaceConfig, log: list[str]) -> None:
    """In a generic image with the repo mounted: run the spec's commands inside the container."""
    commands = [*spec.pre_install]
    if spec.pip_packages:
        commands.append("python -m pip install " + " ".join(spec.pip_packages))
    if spec.install:
        commands.append(spec.install)
    for command in commands:
        log.append(f"$ {command}")
        result = env.execute(command, timeout=config.setup_timeout)
        log.append(result["output"][-4000:])
        if result["returncode"] != 0:
            raise WorkspaceError(
                f"set-up command failed in the container: {command}\n{result['output'][-2000:]}"
            )


def _python_runs(path: str) -> bool:
    # A pyenv shim exists for every version but fails for those not selected; only running tells.
    try:
        return subprocess.run([path, "-c", "import venv"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _find_python(version: str, log: list[str]) -> str:
    """An interpreter of `version` (on PATH, or installed by pyenv), else the one running Wren."""
    if version:
        pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        candidates = [shutil.which(f"python{version}")]
        candidates += [
            str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)
        ]
        for candidate in candidates:
            if candidate and _python_runs(candidate):
                return candidate
        log.append(f"python{version} is not installed; using {sys.version.split()[0]} instead")
    return getattr(sys, "_base_executable", None) or sys.executable


def _site_packages(venv: Path) -> Path:
    # Asked of the venv's own interpreter: its Python version may differ from ours.
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _venv_env(venv: Path) -> dict[str, str]:
    return {
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _env_cache(config: WorkspaceConfig) -> Path:
    return Path(config.env_cache or Path.home() / ".cache" / "wren" / "envs")


def _venv_homes(venv: Path) -> list[str]:
    """The directories a venv's interpreter lives in: its base venv's, and so on to the installation."""
    homes: list[str] = []
    while (venv / "pyvenv.cfg").is_file() and len(homes) < 8:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
        cfg = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines) if v}
        home = cfg.get("home", "")
        if not home:
            break
        venv = Path(os.path.realpath(home)).parent
        homes.append(str(venv))
    return homes


def _host_python_env(
    spec: InstanceSpec, repo: Path, instance_dir: Path, config: WorkspaceConfig, log: list[str]
) -> dict[str, str]:
    """Build (or reuse) the shared dependency venv, layer an instance venv on it, install the repo."""
    if not (spec.install or spec.packages or spec.pip_packages):
        return {}
    base = _shared_venv(spec, repo, config, log)
    venv = instance_dir / "venv"
    subprocess.run([str(base / "bin" / "python"), "-m", "venv", "--without-pip", str(venv)], check=True)
    # The shared venv's packages (pip among them) are visible through a .pth file; what the
    # instance installs (its own editable checkout) lands in its own venv only.
    (_site_packages(venv) / "_wren_shared.pth").write_text(f"{_site_packages(base)}\n")
    _wrap_scripts(base, venv)
    env = {**os.environ, **_venv_env(venv)}
    if spec.install:
        _run(spec.install, cwd=repo, env=env, timeout=config.setup_timeout, log=log)
    return _venv_env(venv)


def _wrap_scripts(base: Path, venv: Path) -> None:
    """Make the shared venv's console scripts (pytest, ...) run under the instance's interpreter."""
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


# Shared venvs whose build failed in this process: the instances waiting for them fail at once
# instead of each trying again (a failed install tends to fail the same way, slowly).
_FAILED_BUILDS: dict[str, str] = {}


def _shared_venv(spec: InstanceSpec, repo: Path, config: WorkspaceConfig, log: list[str]) -> Path:
    cache = _env_cache(config)
    cache.mkdir(parents=True, exist_ok=True)
    requirements = ""
    if spec.packages == "requirements.txt" and (repo / "requirements.txt").is_file():
        requirements = (repo / "requirements.txt").read_text()
    key = "\n".join([spec.python, spec.packages, requirements, *spec.pip_packages])
    venv = cache / hashlib.sha256(key.encode()).hexdigest()[:16]
    with open(cache / f"{venv.name}.lock", "w") as lock:
        # One builder per venv; other workers wait here and then reuse it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".wren-ready").is_file():
            return venv
        if venv.name in _FAILED_BUILDS:
            raise WorkspaceError(
                f"the shared environment {venv} failed to build: {_FAILED_BUILDS[venv.name]}"
            )
        try:
            return _build_shared_venv(venv, key, requirements, spec, repo, config, log)
        except (WorkspaceError, subprocess.SubprocessError, OSError) as e:
            _FAILED_BUILDS[venv.name] = str(e)[:2000]
            raise


def _build_shared_venv(
    venv: Path,
    key: str,
    requirements: str,
    spec: InstanceSpec,
    repo: Path,
    config: WorkspaceConfig,
    log: list[str],
) -> Path:
    shutil.rmtree(venv, ignore_errors=True)
    python = _find_python(spec.python, log)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {**os.environ, **_venv_env(venv)}
    pip = "python -m pip install -q"
    if requirements:
        (venv / "requirements.txt").write_text(requirements)
        _run(
            f"{pip} -r {venv / 'requirements.txt'}",
            cwd=repo,
            env=env,
            timeout=config.setup_timeout,
            log=log,
        )
    elif spec.packages and spec.packages not in ("requirements.txt", "environment.yml"):
        names = " ".join(shlex.quote(p) for p in spec.packages.split())
        _run(f"{pip} {names}", cwd=repo, env=env, timeout=config.setup_timeout, log=log)
    elif spec.packages == "environment.yml":
        log.append("environment.yml (conda) is not installed on the host; only pip packages are")
    if spec.pip_packages:
        quoted = " ".join(shlex.quote(p) for p in spec.pip_packages)
        _run(f"{pip} {quoted}", cwd=repo, env=env, timeout=config.setup_timeout, log=log)
    (venv / ".wren-ready").write_text(key)
    return venv
