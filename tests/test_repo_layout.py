"""One list of folders that hold no code under test, read by the judge's self-check and by synthesis."""

from __future__ import annotations

from pathlib import Path

import pytest

from wren.bench.selfcheck import package_name
from wren.repo_layout import SKIPPED_DIRS
from wren.synth.discover import source_files


@pytest.mark.parametrize("folder", sorted(SKIPPED_DIRS))
def test_synthesis_and_the_self_check_skip_the_same_folders(tmp_path: Path, folder: str):
    for package in ("calc", folder):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("def f():\n    return 1\n")
    # The one package left is the package under test, and the only source to mutate.
    assert package_name(tmp_path, "owner/unrelated-name") == "calc"
    assert source_files(tmp_path) == ["calc/__init__.py"]
