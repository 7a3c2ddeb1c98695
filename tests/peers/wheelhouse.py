"""An offline wheelhouse for tests that build environments: wheels repacked from the pure-Python
distributions installed in the interpreter running the tests (pytest and its dependencies,
setuptools for builds), so pip installs them with no index (CI has no network)."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

# What the fixture environments install: pytest, and setuptools (+ wheel) for isolated builds.
ROOTS = ("pytest", "setuptools", "wheel", "pip")


def _requirements(dist: metadata.Distribution) -> list[str]:
    names = []
    for line in dist.requires or []:
        req = Requirement(line)
        # Only what this interpreter needs: no extras, no other platforms (colorama is Windows-only,
        # and a vendored copy of it elsewhere on sys.path, as Ray adds one, is not a whole distribution).
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        names.append(req.name)
    return names


def _closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "_", name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a dependency for other Pythons only (its marker does not hold here)
        seen[key] = dist
        todo += _requirements(dist)
    return list(seen.values())


def _repack(dist: metadata.Distribution, out: Path) -> Path:
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = out / f"{name}-{dist.version}-py3-none-any.whl"
    root = Path(str(dist.locate_file("")))
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in dist.files or []:
            rel = file.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "RECORD", "INSTALLER")):
                continue
            data = (root / rel).read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{rel},sha256={digest},{len(data)}")
        dist_info = next(f.parts[0] for f in dist.files or [] if f.parts[0].endswith(".dist-info"))
        records.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def build_wheelhouse(out: Path) -> Path:
    """Wheels of ROOTS and their dependencies in `out` (made once per directory)."""
    out.mkdir(parents=True, exist_ok=True)
    if not any(out.glob("*.whl")):
        for dist in _closure(ROOTS):
            _repack(dist, out)
    return out


def offline_pip(monkeypatch, wheelhouse: Path) -> None:
    """pip in this test (and what it starts) installs from `wheelhouse` only."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)


@pytest.fixture(scope="module")
def shared_dirs(tmp_path_factory):
    """One wheelhouse and one environment cache per test module: environments are built once."""
    root = tmp_path_factory.mktemp("env-shared")
    return build_wheelhouse(root / "wheels"), root / "envs"


@pytest.fixture
def env_cache(monkeypatch, shared_dirs):
    """Environments install from the module's wheelhouse (no network) into the module's cache, its path."""
    offline_pip(monkeypatch, shared_dirs[0])
    return shared_dirs[1]
