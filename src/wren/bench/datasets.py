"""SWE-bench-format datasets: local JSON / JSONL / Parquet files, or the Hugging Face datasets
by short name when they are already in the local cache (nothing is downloaded).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError

# Short names -> (Hugging Face dataset, default split).
DATASET_NAMES: dict[str, tuple[str, str]] = {
    "lite": ("princeton-nlp/SWE-bench_Lite", "test"),
    "lite-dev": ("princeton-nlp/SWE-bench_Lite", "dev"),
    "verified": ("princeton-nlp/SWE-bench_Verified", "test"),
    "full": ("princeton-nlp/SWE-bench", "test"),
}
TEST_LISTS = ("FAIL_TO_PASS", "PASS_TO_PASS")
SHUFFLE_SEED = 42
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class DatasetError(ConfigError):
    """A dataset could not be read, or an instance in it is malformed."""


def load_instances(spec: str | Path, split: str = "") -> list[dict[str, Any]]:
    """Read every instance of a dataset file or named dataset, normalised (test lists as lists)."""
    path = Path(spec)
    if path.is_file():
        rows = _read_file(path)
    elif str(spec) in DATASET_NAMES:
        rows = [(f"{spec}[{i}]", row) for i, row in enumerate(_read_hub_cache(str(spec), split))]
    else:
        raise DatasetError(
            f"dataset {str(spec)!r} is neither a file nor one of {', '.join(DATASET_NAMES)}; "
            "pass a JSON, JSONL or Parquet file of SWE-bench instances"
        )
    instances = [normalise_instance(row, where=where) for where, row in rows]
    seen: set[str] = set()
    for inst in instances:
        if inst["instance_id"] in seen:
            raise DatasetError(f"{spec}: instance_id {inst['instance_id']!r} appears more than once")
        seen.add(inst["instance_id"])
    return instances


def _read_jsonl(path: Path, text: str) -> list[tuple[str, Any]]:
    """Rows of a JSONL file, each with where it is (`FILE line N`, counting every line)."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path} line {number}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DatasetError(
                f"cannot read dataset {path}: line {number} is not valid JSON ({e.msg} at column {e.colno})"
            ) from e
    return rows


def _read_file(path: Path) -> list[tuple[str, Any]]:
    """Rows of a JSON, JSONL or Parquet file, each with where it is (for error messages)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return [(f"{path} row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist())]
        text = path.read_text()
        if suffix == ".jsonl":
            return _read_jsonl(path, text)
        data = json.loads(text)
    except ImportError as e:
        raise DatasetError(f"reading {path} needs pyarrow: pip install 'wren-agent[bench]'") from e
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"cannot read dataset {path}: not valid JSON at line {e.lineno}, column {e.colno} ({e.msg})"
        ) from e
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"cannot read dataset {path}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from e
    except (OSError, ValueError) as e:
        # pyarrow's ArrowInvalid is a ValueError: a torn or non-Parquet file.
        raise DatasetError(f"cannot read dataset {path}: {e}") from e
    if isinstance(data, dict):
        # Also accept {instance_id: instance} (the shape of preds.json).
        data = list(data.values()) if all(isinstance(v, dict) for v in data.values()) else [data]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of instances, found {type(data).__name__}")
    return [(f"{path}[{i}]", row) for i, row in enumerate(data)]


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Hugging Face offline for this call only: a missing dataset fails fast instead of hanging on
    the network, and the rest of the process (a model download, training) stays online.

    The libraries read their offline switches once, at import, into module constants; those are
    set here and put back afterwards, as are the variables. A switch the user set is left alone.
    """
    import datasets.config
    import huggingface_hub.constants

    if any(name in os.environ for name in _OFFLINE_VARS):
        yield
        return
    modules = (datasets.config, huggingface_hub.constants)
    saved = [(m, n, getattr(m, n)) for m in modules for n in _OFFLINE_VARS if hasattr(m, n)]
    try:
        os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
        for module, name, _ in saved:
            setattr(module, name, True)
        yield
    finally:
        for name in _OFFLINE_VARS:
            os.environ.pop(name, None)
        for module, name, value in saved:
            setattr(module, name, value)


def _read_hub_cache(name: str, split: str) -> list[dict[str, Any]]:
    hub_name, default_split = DATASET_NAMES[name]
    split = split or default_split
    hint = (
        f"dataset {name!r} ({hub_name}, split {split!r}) is not in the local Hugging Face cache; "
        "download it where you have network access, or pass a file: --dataset path/to/instances.jsonl "
        "(JSON, JSONL or Parquet)"
    )
    try:
        import datasets
    except ImportError as e:
        raise DatasetError(
            f"{hint}; loading named datasets also needs: pip install 'wren-agent[bench]'"
        ) from e
    try:
        with _hub_offline():
            return list(datasets.load_dataset(hub_name, split=split))
    except Exception as e:  # the datasets library raises many kinds for "not cached"
        raise DatasetError(f"{hint} ({type(e).__name__}: {str(e)[:200]})") from None


def parse_test_list(value: Any, *, where: str = "") -> list[str]:
    """A FAIL_TO_PASS / PASS_TO_PASS value, which may be a list or a JSON string of one."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where}: test list is not JSON: {value[:80]!r}") from e
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DatasetError(f"{where}: test list must be a list of strings")
    return value


def normalise_instance(row: Any, *, where: str = "") -> dict[str, Any]:
    """Check an instance's fields and turn its test lists into lists."""
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: an instance must be an object, not {type(row).__name__}")
    if not isinstance(row.get("instance_id"), str) or not row["instance_id"]:
        raise DatasetError(f"{where}: instance has no 'instance_id'")
    inst = dict(row)
    for key in TEST_LISTS:
        inst[key] = parse_test_list(inst.get(key), where=f"{where} ({inst['instance_id']}).{key}")
    for key in ("patch", "test_patch", "problem_statement", "version", "test_cmd"):
        if inst.get(key) is None:
            inst[key] = ""
    inst["version"] = str(inst["version"])
    return inst


def parse_slice(spec: str) -> slice:
    """`"A:B"`, `":B"`, `"A:"` or `"N"` (the first N) as a slice."""
    if not spec:
        return slice(None)
    try:
        if ":" not in spec:
            bounds = [None, int(spec)]
        else:
            start, _, stop = spec.partition(":")
            bounds = [int(start) if start else None, int(stop) if stop else None]
    except ValueError:
        raise DatasetError(f"--slice {spec!r} is not of the form A:B, :B, A: or N") from None
    if any(b is not None and b < 0 for b in bounds):
        # Python's negative indices count from the end; as a count of instances they are a typo.
        raise DatasetError(f"--slice {spec!r}: A, B and N must be 0 or more")
    return slice(*bounds)


def select_instances(
    instances: list[dict[str, Any]],
    *,
    slice_spec: str = "",
    filter_re: str = "",
    shuffle: bool = False,
) -> list[dict[str, Any]]:
    """Filter by instance_id regex, shuffle (seed 42) and slice, in that order (as mini-swe-agent does)."""
    out = list(instances)
    if filter_re:
        try:
            pattern = re.compile(filter_re)
        except re.error as e:
            raise DatasetError(f"--filter {filter_re!r} is not a valid regular expression: {e}") from None
        out = [inst for inst in out if pattern.search(inst["instance_id"])]
    if shuffle:
        out = sorted(out, key=lambda inst: inst["instance_id"])
        random.Random(SHUFFLE_SEED).shuffle(out)
    return out[parse_slice(slice_spec)]
