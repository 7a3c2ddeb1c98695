"""Secrets in Wren's own environment never reach what it writes or prints, whatever the agent runs.

`wren run` as a user runs it, against a scripted OpenAI-compatible server on 127.0.0.1; the agent's
command reads the environment of Wren itself (`/proc/$PPID/environ`), which the local environment
cannot hide.
"""

from __future__ import annotations

import json

from tests.conftest import SUBMIT, bash
from tests.test_cli_run import wren
from wren.redact import REDACTED, Redactor, current_redactor

SECRETS = {
    "OPENAI_API_KEY": "sk-probe-openai-0123456789abcdef",
    "GH_PAT": "probe-github-pat-0123456789",
    "DATABASE_URL": "postgres://app:probe-db-password-42@db.internal:5432/app",
    "MY_PROVIDER_KEY": "probe-configured-key-0123456789",
}


def _leaks(text: str) -> list[str]:
    values = [*SECRETS.values(), "probe-db-password-42"]
    return [v for v in values if v in text]


def test_an_agent_reading_wrens_environment_leaks_nothing_to_disk_or_console(
    buggy_repo, scripted_server, tmp_path
):
    # The console clips long observations, so the command keeps the lines that matter.
    dump = "tr '\\0' '\\n' < /proc/$PPID/environ | grep -E '^(OPENAI|GH_PAT|DATABASE|MY_PROVIDER)'"
    server = scripted_server([bash(dump, "Read the environment."), SUBMIT])
    out = tmp_path / "out"
    proc = wren(
        "run", "-t", "look around", "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}",
        "-c", "model.api_key=$MY_PROVIDER_KEY", "--cwd", str(buggy_repo), "--yolo", "-o", str(out),
        env=SECRETS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The command did read the environment: the variable names are there, their values are not.
    assert "OPENAI_API_KEY=" in proc.stdout and REDACTED in proc.stdout
    assert _leaks(proc.stdout + proc.stderr) == []
    for name in ("trajectory.jsonl", "run.traj.json"):
        text = (out / name).read_text()
        assert "GH_PAT=" in text, name
        assert _leaks(text) == [], name


def test_values_token_shapes_and_url_passwords_are_replaced():
    redact = Redactor(["a-known-secret-value"])
    text = "k=a-known-secret-value t=ghp_" + "a" * 36 + " u=https://bob:pw-secret@host/x short=abc"
    assert redact(text) == f"k={REDACTED} t={REDACTED} u=https://bob:{REDACTED}@host/x short=abc"
    nested = redact.data({"a-known-secret-value": ["x a-known-secret-value", 3]})
    assert nested == {REDACTED: [f"x {REDACTED}", 3]}


def test_secret_looking_variables_are_found_in_the_environment(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-0123456789")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/not/a/secret/lib")
    monkeypatch.setenv("HF_HUB_DISABLE_TOKEN", "1")
    redact = current_redactor()
    assert redact("tok-0123456789 /opt/not/a/secret/lib 1") == f"{REDACTED} /opt/not/a/secret/lib 1"


def test_exact_text_keeps_url_passwords_and_token_shapes():
    """A patch is applied byte for byte: it loses only known secret values, not look-alikes."""
    redact = current_redactor(["a-known-secret-value"], shapes=False)
    patch = "+URL = 'https://user:pass1234@example.com'\n+KEY = 'sk-" + "x" * 24 + "'\n+a-known-secret-value"
    assert redact(patch) == patch.replace("a-known-secret-value", REDACTED)


def test_preds_json_holds_no_secret_value(tmp_path, monkeypatch):
    from wren.bench.batch import PredictionsStore

    monkeypatch.setenv("OPENAI_API_KEY", SECRETS["OPENAI_API_KEY"])
    store = PredictionsStore(tmp_path)
    patch = f"+key = '{SECRETS['OPENAI_API_KEY']}'\n+url = 'https://u:pass1234@example.com'\n"
    store.record({"instance_id": "i", "model_name_or_path": "m", "model_patch": patch, "exit_status": "x"})
    saved = json.loads((tmp_path / "preds.json").read_text())["i"]["model_patch"]
    assert saved == f"+key = '{REDACTED}'\n+url = 'https://u:pass1234@example.com'\n"
