"""User-facing text reaches the console as written: square brackets in it are not rich markup."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.peers.fixture_repo import build_calc_repo, write_jsonl


def test_eval_prints_errors_with_brackets_whole(tmp_path):
    inst = build_calc_repo(tmp_path / "repos")
    # An error naming `[bench]`, as the install hints do (`pip install 'wren-agent[bench]'`).
    inst = {**inst, "instance_id": "x[bench]-1", "repo": "someone/extra[bench]"}
    dataset = write_jsonl(tmp_path / "d.jsonl", [inst])
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({inst["instance_id"]: {"model_patch": ""}}))
    proc = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "eval", "-p", str(preds), "-d", str(dataset),
         "--repos", str(tmp_path / "repos"), "--env", "local", "-o", str(tmp_path / "r[bench]" / "report.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stderr.split())  # rich wraps long lines at the terminal width
    assert "x[bench]-1: error (WorkspaceError: no git repository for someone/extra[bench]" in text, text
    assert "looked for someone__extra[bench]," in text
    assert f"report:{tmp_path / 'r[bench]' / 'report.json'}" in text.replace(" ", "")
