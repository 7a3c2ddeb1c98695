"""A workspace per instance: an environment whose working directory is a clean checkout of the
instance's repo at its base commit, with the repo's dependencies installed.

Two sources: a directory of local git repositories (`repos`), checked out on the host and used
directly (local, sandbox) or mounted (docker, podman, apptainer); or, without `repos`, a container
image per instance (`image_template`, SWE-bench's `sweb.eval.x86_64.*` images) with the repo in it.
On the host, dependencies go into a virtualenv per distinct spec built once and shared, and each
instance gets a thin virtualenv layered on it for its own editable install (see `envs`). For the
judge (`judge=True`), every instance gets such an environment, its spec's pre-install and install
commands run with allowlisted variables only, and `test_environ` is what its tests must run with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from wren.bench import envs
from wren.bench.repos import WorkspaceError, checkout, find_repo
from wren.bench.requirements import detect_setup
from wren.bench.specs import InstanceSpec
from wren.exceptions import ConfigError
from wren.validation import StrictModel

HOST_KINDS = ("local", "sandbox")
CONTAINER_KINDS = ("docker", "podman", "apptainer", "singularity")


class WorkspaceConfig(StrictModel):
    """Where instance checkouts come from and how they are set up."""

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
    pythons: list[str] = Field(default_factory=list)
    """Interpreters or install directories searched first for a spec's Python version (then
    WREN_PYTHONS, pyenv, uv, PATH)."""


@dataclass
class Workspace:
    """An open workspace: the environment and the repo's directory as commands see it."""

    env: Any
    repo_dir: str
    instance_id: str
    setup_log: list[str] = field(default_factory=list)
    venv: Path | None = None
    """The instance's own virtualenv on the host (None in containers, or without set-up)."""
    shared_venv: Path | None = None
    """The shared dependency virtualenv it is layered on."""
    test_environ: dict[str, str] | None = None
    """The only variables test commands may see (None: the environment's own)."""
    install_commands: list[str] = field(default_factory=list)
    """The spec's install command(s), run again after a patch that touches packaging files."""
    notes: list[str] = field(default_factory=list)
    """What the spec asked for that could not be honoured (conda-only entries, system packages)."""
    left_out: list[str] = field(default_factory=list)
    """Dependencies the spec names that could not be installed (conda-only, not building)."""
    missing_files: list[str] = field(default_factory=list)
    """Files of the commit that the repository mirror lacks (left out of the checkout)."""


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
    *,
    judge: bool = False,
    network: bool = False,
) -> Iterator[Workspace]:
    """Check out, start the environment, set up; close and clean everything on the way out.

    `judge`: isolate the instance (its own interpreter and packages, allowlisted variables) even when
    its spec installs nothing; `network`: its tests may use the network (proxies are passed on).
    """
    from wren.environments import get_environment

    kind = _kind(env_config)
    env_config = dict(env_config)
    instance_dir: Path | None = None
    log: list[str] = []
    repo_dir = config.container_repo_dir
    host_setup = config.setup and kind in HOST_KINDS
    ws = Workspace(env=None, repo_dir=repo_dir, instance_id=inst["instance_id"], setup_log=log)
    try:
        if config.repos:
            source = find_repo(config.repos, inst.get("repo", ""))
            instance_dir = _instance_dir(config, inst["instance_id"])
            host_repo = checkout(source, inst.get("base_commit") or "HEAD", instance_dir / "repo")
            missing = host_repo / ".git" / "wren-missing-files"
            if missing.is_file():
                ws.missing_files = missing.read_text().split()
            if kind in HOST_KINDS:
                repo_dir = str(host_repo)
                env_config.setdefault("cwd", repo_dir)
                if kind == "sandbox":
                    env_config.setdefault("workdir", str(instance_dir))
                    if network:
                        env_config.setdefault("network", True)
                ws.repo_dir = repo_dir
                if host_setup:
                    _host_setup(
                        ws, inst, spec, source, host_repo, instance_dir, config, judge=judge, network=network
                    )
                    if not judge:
                        env_config["env"] = {**_venv_vars(ws), **env_config.get("env", {})}
                    if kind == "sandbox":
                        # The sandbox shows no host directory it is not told of: the environment cache
                        # (read only; its private /tmp would hide a cache there) and the interpreters
                        # the environments were made from.
                        shown = [os.path.realpath(_cache_dir(config))]
                        for venv in (ws.venv, ws.shared_venv):
                            if venv is not None:
                                shown += _venv_homes(venv)
                        env_config["readonly"] = [*env_config.get("readonly", []), *dict.fromkeys(shown)]
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
        ws.env = env
        try:
            if config.setup and kind in CONTAINER_KINDS and config.repos:
                _container_setup(env, spec, config, log)
            yield ws
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


def _cache_dir(config: WorkspaceConfig) -> Path:
    return Path(config.env_cache or Path.home() / ".cache" / "wren" / "envs")


def _venv_vars(ws: Workspace) -> dict[str, str]:
    if ws.venv is None:
        return {}
    return {
        "VIRTUAL_ENV": str(ws.venv),
        "PATH": f"{ws.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


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


# Shared environments whose build failed in this process: the instances waiting for them fail at
# once instead of each trying again (a failed install tends to fail the same way, slowly).
_FAILED_BUILDS: dict[str, str] = {}


def _host_setup(
    ws: Workspace,
    inst: dict[str, Any],
    spec: InstanceSpec,
    source: Path,
    repo: Path,
    instance_dir: Path,
    config: WorkspaceConfig,
    *,
    judge: bool,
    network: bool,
) -> None:
    """Build (or reuse) the shared environment, layer the instance's on it, run pre-install and install."""
    log = ws.setup_log
    if spec.source != "swebench" and judge and not spec.packages:
        detected = detect_setup(repo)
        updates: dict[str, Any] = {"pip_packages": [*detected["pip_packages"], *spec.pip_packages]}
        if not spec.install:
            updates["install"] = detected["install"]
        spec = spec.model_copy(update=updates)
        log.append(
            f"spec detected: install {spec.install or '(nothing to install)'}; test requirements from "
            + (", ".join(detected["detected_from"]) or "none found")
            + "; pytest"
        )
        deps = {"requirements": detected["requirements"], "packages": [], "not_installed": [], "from": ""}
    else:
        if not judge and not (spec.install or spec.packages or spec.pip_packages):
            return
        commit = inst.get("environment_setup_commit") or inst.get("base_commit") or "HEAD"
        deps = envs.dependency_lists(spec, source, commit)
        if deps["from"]:
            log.append(f"dependencies from {deps['from']} at {commit[:12]}")
    base = envs.shared_env(
        spec,
        deps,
        cache=_cache_dir(config),
        pythons=config.pythons,
        timeout=config.setup_timeout,
        log=log,
        failed=_FAILED_BUILDS,
    )
    ws.notes += [f"environment.yml entry not installed: {e}" for e in deps["not_installed"]]
    ws.left_out = list(deps["not_installed"])
    venv = instance_dir / "venv"
    envs.instance_env(base, venv)
    ws.venv, ws.shared_venv = venv, base
    pre_install, left_out = envs.system_installs(list(spec.pre_install))
    ws.notes += [f"system packages not installed on the host: {c}" for c in left_out]
    ws.install_commands = [spec.install] if spec.install else []
    build_env = envs.build_environ(venv, spec)
    for command in pre_install:
        envs.run_logged(command, cwd=repo, env=build_env, timeout=config.setup_timeout, log=log)
    for command in ws.install_commands:
        envs.install(command, cwd=repo, env=build_env, timeout=config.setup_timeout, log=log)
    if judge:
        ws.test_environ = envs.clean_environ(
            [venv / "bin"], build=False, network=network, extra={"VIRTUAL_ENV": str(venv)}
        )


def reinstall(ws: Workspace, spec: InstanceSpec, timeout: float) -> None:
    """Run the install command(s) again (after a patch changed how the package is built)."""
    if ws.venv is None:
        return
    build_env = envs.build_environ(ws.venv, spec)
    for command in ws.install_commands:
        envs.install(command, cwd=Path(ws.repo_dir), env=build_env, timeout=timeout, log=ws.setup_log)
