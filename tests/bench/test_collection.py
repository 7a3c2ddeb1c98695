"""Test files that pytest could not collect because an installed package raised on import: the
environment's failure, not the patch's, unless the import ran through a file the patch changed."""

from __future__ import annotations

import pytest

from wren.bench.collection import broken_by_environment, failures_from_environment

SITE = "/root/.cache/wren/envs/5e22/lib/python3.10/site-packages"


def collecting(test_file: str, frames: list[str], error: str) -> str:
    """pytest's section for a file it could not collect, as `pytest -rA` prints it."""
    lines = [f"{'_' * 16} ERROR collecting {test_file} {'_' * 17}"]
    for frame in frames:
        lines += [f"{frame}: in <module>", "    import something"]
    lines += [f"E   {error}", ""]
    return "\n".join(lines)


def output(*sections: str) -> str:
    return "\n".join(
        [
            "============================= test session starts ==============================",
            "collected 0 items / 2 errors",
            "",
            "==================================== ERRORS ====================================",
            *sections,
            "=========================== short test summary info ============================",
            "ERROR xarray/tests/test_combine.py - RuntimeError: Cannot find the ecCodes li...",
        ]
    )


ECCODES = collecting(
    "xarray/tests/test_combine.py",
    [
        "/root/.pyenv/versions/3.10.13/lib/python3.10/importlib/__init__.py:126",
        "xarray/tests/__init__.py:72",
        f"{SITE}/cfgrib/__init__.py:20",
        f"{SITE}/gribapi/errors.py:16",
    ],
    "RuntimeError: Cannot find the ecCodes library",
)
PATCH_TOUCHING_INIT = "diff --git a/xarray/tests/__init__.py b/xarray/tests/__init__.py\n--- a/x\n+++ b/x\n"
PATCH_ELSEWHERE = "diff --git a/xarray/core/concat.py b/xarray/core/concat.py\n--- a/x\n+++ b/x\n"
IN_REPO = collecting(
    "xarray/tests/test_concat.py",
    ["xarray/tests/test_concat.py:5", "xarray/core/concat.py:12"],
    "SyntaxError: invalid syntax",
)


@pytest.mark.parametrize(
    ("text", "patch", "expected"),
    [
        # An installed package raises, reached through no changed file: the environment's.
        (
            output(ECCODES),
            PATCH_ELSEWHERE,
            {"xarray/tests/test_combine.py": "RuntimeError: Cannot find the ecCodes library"},
        ),
        (
            output(ECCODES),
            "",
            {"xarray/tests/test_combine.py": "RuntimeError: Cannot find the ecCodes library"},
        ),
        # The chain runs through a file the patch changed: the patch may be why.
        (output(ECCODES), PATCH_TOUCHING_INIT, {}),
        # It ends in the repository: the repository's own failure.
        (output(IN_REPO), "", {}),
        (
            output(ECCODES, IN_REPO),
            "",
            {"xarray/tests/test_combine.py": "RuntimeError: Cannot find the ecCodes library"},
        ),
        # Nothing failed to collect.
        (
            "PASSED xarray/tests/test_combine.py::test_a\nFAILED xarray/tests/test_combine.py::test_b\n",
            "",
            {},
        ),
    ],
)
def test_broken_by_environment(text, patch, expected):
    assert broken_by_environment(text, patch) == expected


def test_only_when_every_failing_test_is_in_a_broken_file():
    text = output(ECCODES, IN_REPO)
    in_broken = ["xarray/tests/test_combine.py::test_a", "xarray/tests/test_combine.py::test_b"]
    assert failures_from_environment(text, "", in_broken) == {
        "xarray/tests/test_combine.py": "RuntimeError: Cannot find the ecCodes library"
    }
    # A failing test of a file that was collected (or failed for its own reasons) is the patch's.
    assert failures_from_environment(text, "", [*in_broken, "xarray/tests/test_concat.py::test_c"]) == {}
    assert failures_from_environment(text, "", []) == {}
