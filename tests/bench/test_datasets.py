"""Reading SWE-bench-format datasets and choosing instances."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wren.bench.datasets import DatasetError, load_instances, parse_slice, select_instances


def _instances(n: int) -> list[dict]:
    return [
        {
            "instance_id": f"org__proj-{i}",
            "repo": "org/proj",
            "base_commit": "abc",
            "problem_statement": f"problem {i}",
            "FAIL_TO_PASS": json.dumps([f"t.py::test_{i}"]),
            "PASS_TO_PASS": [],
            "version": 1.0,
        }
        for i in range(n)
    ]


def test_jsonl_json_and_parquet_read_the_same(tmp_path):
    rows = _instances(3)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    loaded = [load_instances(tmp_path / f"d.{ext}") for ext in ("jsonl", "json", "parquet")]
    assert loaded[0] == loaded[1] == loaded[2]
    first = loaded[0][0]
    assert first["FAIL_TO_PASS"] == ["t.py::test_0"] and first["PASS_TO_PASS"] == []
    assert first["version"] == "1.0" and first["test_patch"] == ""


def test_bad_files_name_the_problem(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"instance_id": "a"}\nnot json\n')
    with pytest.raises(DatasetError, match="cannot read dataset"):
        load_instances(tmp_path / "bad.jsonl")
    (tmp_path / "noid.json").write_text(json.dumps([{"repo": "x/y"}]))
    with pytest.raises(DatasetError, match="no 'instance_id'"):
        load_instances(tmp_path / "noid.json")
    (tmp_path / "dup.json").write_text(json.dumps([{"instance_id": "a"}, {"instance_id": "a"}]))
    with pytest.raises(DatasetError, match="more than once"):
        load_instances(tmp_path / "dup.json")
    (tmp_path / "lists.json").write_text(json.dumps([{"instance_id": "a", "FAIL_TO_PASS": "[1, 2]"}]))
    with pytest.raises(DatasetError, match="FAIL_TO_PASS"):
        load_instances(tmp_path / "lists.json")
    with pytest.raises(DatasetError, match="neither a file nor one of lite"):
        load_instances(tmp_path / "missing.jsonl")


def test_a_torn_dataset_names_the_line_or_row_where_it_tears(tmp_path):
    lines = [json.dumps(r) for r in _instances(6)]
    # A blank line counts: the message names the line an editor shows.
    torn = "\n".join([*lines[:2], "", lines[2], lines[3][: len(lines[3]) // 2], lines[4]]) + "\n"
    (tmp_path / "torn.jsonl").write_text(torn)
    with pytest.raises(DatasetError, match=r"torn\.jsonl: line 5 is not valid JSON"):
        load_instances(tmp_path / "torn.jsonl")
    pretty = json.dumps(_instances(2), indent=1)
    (tmp_path / "torn.json").write_text(pretty[: len(pretty) - 40])
    expected = pretty[: len(pretty) - 40].count("\n") + 1
    with pytest.raises(DatasetError, match=rf"not valid JSON at line {expected},"):
        load_instances(tmp_path / "torn.json")
    # A bad instance on a later line is named by its line too.
    bad = [*lines[:3], json.dumps({"repo": "x/y"})]
    (tmp_path / "noid.jsonl").write_text("\n".join(bad) + "\n")
    with pytest.raises(DatasetError, match=r"noid\.jsonl line 4"):
        load_instances(tmp_path / "noid.jsonl")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(_instances(50)), tmp_path / "d.parquet")
    data = (tmp_path / "d.parquet").read_bytes()
    (tmp_path / "torn.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cannot read dataset .*torn\.parquet: .*Parquet"):
        load_instances(tmp_path / "torn.parquet")


def test_named_dataset_not_in_cache_says_how_to_pass_a_file(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"not in the local Hugging Face cache.*--dataset path/to"):
        load_instances("lite-dev")


def test_filter_shuffle_slice():
    rows = [dict(r, FAIL_TO_PASS=[], PASS_TO_PASS=[]) for r in _instances(10)]
    assert [r["instance_id"] for r in select_instances(rows, slice_spec="2:4")] == [
        "org__proj-2",
        "org__proj-3",
    ]
    assert len(select_instances(rows, slice_spec="3")) == 3
    picked = select_instances(rows, filter_re=r"-[13579]$")
    assert [r["instance_id"][-1] for r in picked] == ["1", "3", "5", "7", "9"]
    shuffled = select_instances(rows, shuffle=True)
    assert shuffled == select_instances(list(reversed(rows)), shuffle=True)  # seeded, order-independent
    assert shuffled != rows and sorted(r["instance_id"] for r in shuffled) == [r["instance_id"] for r in rows]
    with pytest.raises(DatasetError, match="--filter"):
        select_instances(rows, filter_re="(")
    with pytest.raises(DatasetError, match="--slice"):
        parse_slice("a:b")


def test_loading_a_named_dataset_leaves_the_process_online(tmp_path):
    """Offline only while the cache is read: a model download later in the same process still works."""
    pytest.importorskip("datasets")
    probe = (
        "import os, datasets.config, huggingface_hub.constants as h\n"
        "from wren.bench.datasets import DatasetError, load_instances\n"
        "try:\n    load_instances('lite-dev')\nexcept DatasetError:\n    pass\n"
        "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('HF_DATASETS_OFFLINE'),"
        " datasets.config.HF_HUB_OFFLINE, h.HF_HUB_OFFLINE)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["HF_HOME"] = str(tmp_path / "hf")
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None", "False", "False"]
