"""The import layers of DESIGN.md, checked by `lint-imports` on the real source tree and on a copy with
a wrong arrow added, so a broken contract is seen to fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)"
    # PYTHONPATH first, so the copy's `wren` is analysed rather than the installed one.
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=240
    )


def test_the_layer_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    return tmp_path


@pytest.mark.parametrize(
    ("module", "bad_import", "broken", "arrow"),
    [
        # the arrows that existed before the layers were enforced
        ("models/health.py", "from wren.cli import display", "Layers", "wren.models.health -> wren.cli"),
        ("ui/terminal.py", "from wren.cli import display", "Layers", "wren.ui.terminal -> wren.cli"),
        (
            "agents/default.py",
            "from wren.config import schema",
            "Layers",
            "wren.agents.default -> wren.config",
        ),
        ("trajectory/readers.py", "from wren.ui import runs", "Layers", "wren.trajectory.readers -> wren.ui"),
        (
            "gateway/app.py",
            "from wren.agents import default",
            "The gateway",
            "wren.gateway.app -> wren.agents",
        ),
        # search is a peer of bench below learn; learn sits above serve
        ("search/runner.py", "from wren.learn import loop", "Layers", "wren.search.runner -> wren.learn"),
        ("bench/batch.py", "from wren.search import runner", "Layers", "wren.bench.batch -> wren.search"),
        (
            "serve/convert.py",
            "from wren.learn.data import export",
            "Layers",
            "wren.serve.convert -> wren.learn",
        ),
        ("learn/loop.py", "from wren.cli import learn", "Layers", "wren.learn.loop -> wren.cli"),
        # inside learn: data is what training reads, never the other way
        (
            "learn/data/export.py",
            "from wren.learn.train import finetune",
            "Learning",
            "wren.learn.data.export -> wren.learn.train",
        ),
    ],
)
def test_a_wrong_arrow_breaks_a_contract(source_copy, module, bad_import, broken, arrow):
    path = source_copy / "src" / "wren" / module
    path.write_text(path.read_text() + f"\n{bad_import}  # the wrong arrow\n")
    result = lint_imports(source_copy)
    assert result.returncode != 0, result.stdout
    named = next(line for line in result.stdout.splitlines() if line.startswith(broken))
    assert "BROKEN" in named, result.stdout
    assert arrow in result.stdout.split("Broken contracts", 1)[1], result.stdout


def test_a_cycle_between_packages_breaks_the_acyclic_contract(source_copy):
    # The gateway sits outside the layers, so only the acyclic contract sees a cycle through it.
    (source_copy / "src" / "wren" / "registry.py").write_text(
        (source_copy / "src" / "wren" / "registry.py").read_text() + "\nfrom wren.gateway import client\n"
    )
    result = lint_imports(source_copy)
    assert result.returncode != 0
    assert "No import cycles between Wren's packages BROKEN" in result.stdout


def test_a_cycle_between_modules_of_one_package_breaks_the_acyclic_contract(source_copy):
    path = source_copy / "src" / "wren" / "bench" / "progress.py"
    path.write_text(path.read_text() + "\nfrom wren.bench import batch  # the wrong arrow\n")
    result = lint_imports(source_copy)
    assert result.returncode != 0
    assert "No import cycles between Wren's packages BROKEN" in result.stdout
    assert "No cycles are allowed in wren.bench" in result.stdout, result.stdout


def test_no_package_below_cli_loads_cli():
    code = (
        "import sys, wren.models.health, wren.ui.terminal, wren.ui.inspector, wren.run, wren.replay;"
        "print(sorted(m for m in sys.modules if m.startswith('wren.cli')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_package_is_found_by_setuptools():
    """A directory without __init__.py (the gateway was one) is left out of the wheel."""
    from setuptools import find_packages

    found = set(find_packages(str(ROOT / "src")))
    on_disk = {
        f"wren.{p.name}" for p in (ROOT / "src" / "wren").iterdir() if p.is_dir() and any(p.glob("*.py"))
    }
    assert on_disk <= found, on_disk - found
