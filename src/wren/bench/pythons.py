"""Finding a Python interpreter of the version an instance's spec asks for.

The search list, in order: the configured `pythons` entries, then `WREN_PYTHONS` (both hold
interpreter paths or directories holding `bin/pythonX.Y` installs, separated by the OS path
separator in the variable), pyenv's versions (`$PYENV_ROOT`, ~/.pyenv), uv's managed Pythons
(`$UV_PYTHON_INSTALL_DIR`, ~/.local/share/uv/python), then `pythonX.Y` on PATH. A candidate counts
only if running it reports the wanted version (a pyenv shim exists for every version but runs only
the selected ones).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from wren.bench.repos import WorkspaceError

# Works on Python 2.7 too (the specs of old repositories ask for it).
_VERSION_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"


def _reported_version(path: str) -> str:
    try:
        proc = subprocess.run([path, "-c", _VERSION_PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


@functools.lru_cache(maxsize=256)
def _runs_as(path: str, version: str) -> bool:
    return _reported_version(path) == version


def _under(root: Path, version: str) -> list[Path]:
    """Interpreters of `version` in an install root (`bin/pythonX.Y`) or a directory of installs."""
    names = [f"bin/python{version}", f"python{version}"]
    found = [root / name for name in names]
    for pattern in (f"{version}.*", f"cpython-{version}.*", f"python{version}*", f"*-{version}.*"):
        for install in sorted(root.glob(pattern), reverse=True):
            found += [install / name for name in names]
    return found


def search_places(configured: list[str] | tuple[str, ...] = ()) -> list[tuple[str, list[Path]]]:
    """(label, roots) for each place searched, in order; the labels name them in errors."""
    env_list = [p for p in os.environ.get("WREN_PYTHONS", "").split(os.pathsep) if p]
    pyenv = [Path(os.environ["PYENV_ROOT"]) / "versions"] if os.environ.get("PYENV_ROOT") else []
    pyenv.append(Path.home() / ".pyenv" / "versions")
    uv = [Path(os.environ["UV_PYTHON_INSTALL_DIR"])] if os.environ.get("UV_PYTHON_INSTALL_DIR") else []
    uv.append(Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "uv" / "python")
    return [
        ("config bench.workspace.pythons", [Path(p) for p in configured]),
        ("WREN_PYTHONS", [Path(p) for p in env_list]),
        ("pyenv", list(dict.fromkeys(pyenv))),
        ("uv", list(dict.fromkeys(uv))),
    ]


def find_python(version: str, configured: list[str] | tuple[str, ...] = ()) -> str:
    """The path of a working interpreter of `version` ('3.9'); WorkspaceError saying where it looked."""
    looked: list[str] = []
    for label, roots in search_places(configured):
        for root in roots:
            candidates = [root] if root.is_file() else _under(root, version) if root.is_dir() else []
            for candidate in candidates:
                if (
                    candidate.is_file()
                    and os.access(candidate, os.X_OK)
                    and _runs_as(str(candidate), version)
                ):
                    return str(candidate)
        looked.append(f"{label} ({', '.join(str(r) for r in roots) or 'not set'})")
    on_path = shutil.which(f"python{version}")
    if on_path and _runs_as(on_path, version):
        return on_path
    looked.append(f"PATH (python{version})")
    raise WorkspaceError(
        f"no Python {version} interpreter (the instance's spec asks for it); looked in: "
        + "; ".join(looked)
        + f". Install Python {version} (pyenv install {version} or uv python install {version}) "
        "or name it in WREN_PYTHONS"
    )
