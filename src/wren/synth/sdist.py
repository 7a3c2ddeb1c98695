"""A PyPI sdist as a git repository to synthesize tasks from (`wren.synth.repos` lists them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from wren.exceptions import ConfigError


def repo_dir(spec: str, work: Path) -> Path:
    """Where `prepare_repo` puts `name==version`."""
    name, _, version = spec.partition("==")
    return work / "repos-src" / f"{name}-{version or 'latest'}"


def prepare_repo(spec: str, work: Path) -> Path:
    """Download the sdist of `name==version`, unpack it and make it a git repository (once)."""
    name, _, _ = spec.partition("==")
    target = repo_dir(spec, work)
    if (target / ".git").is_dir():
        return target
    download = work / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", spec,
         "-d", str(download)],
        capture_output=True, text=True,
    )  # fmt: skip
    if fetched.returncode != 0:
        raise ConfigError(f"could not download the sdist of {spec}: {fetched.stderr.strip()[-500:]}")
    prefix = name.replace("-", "_").lower()
    found = [p for p in download.iterdir() if p.name.lower().replace("-", "_").startswith(prefix)]
    if len(found) != 1:
        raise ConfigError(f"expected one sdist of {spec} in {download}, found {len(found)}")
    unpack = work / "unpack"
    shutil.rmtree(unpack, ignore_errors=True)
    with tarfile.open(found[0]) as tar:
        tar.extractall(unpack, filter="data")
    (top,) = list(unpack.iterdir())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(top), target)
    git = ["git", "-c", "user.name=wren", "-c", "user.email=wren@localhost"]
    subprocess.run([*git, "init", "-q", str(target)], check=True)
    subprocess.run([*git, "-C", str(target), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(target), "commit", "-qm", f"{spec} sdist"], check=True)
    return target
