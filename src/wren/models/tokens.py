"""Token ids and log-probabilities of a reply, from the fields OpenAI-compatible servers add.

Read when the server returns them (see `model.logprobs`, which asks for them):
- `choices[0].logprobs.content[]`: OpenAI's per-token list (`token`, `logprob`, `bytes`); llama.cpp's
  server adds each token's `id`; vLLM writes `token` as `token_id:N` when started with
  `--return-tokens-as-token-ids`.
- `choices[0].token_ids` and the response's `prompt_token_ids`: vLLM with `return_token_ids: true`.
A run that keeps them can be trained on without tokenizing its text again.
"""

from __future__ import annotations

from typing import Any

# Request fields that ask for them: OpenAI's logprobs (one alternative, the fewest llama.cpp accepts
# and still reports each chosen token), and vLLM's token ids (other servers ignore the field).
REQUEST_FIELDS: dict[str, Any] = {"logprobs": True, "top_logprobs": 1}
EXTRA_REQUEST_FIELDS: dict[str, Any] = {"return_token_ids": True}


def _token_id(entry: dict) -> int | None:
    if isinstance(entry.get("id"), int):
        return entry["id"]
    token = entry.get("token")
    if isinstance(token, str) and token.startswith("token_id:") and token[9:].isdigit():
        return int(token[9:])
    return None


def reply_tokens(response: dict, choice: dict) -> dict[str, list]:
    """`token_ids`, `logprobs` and `prompt_token_ids` of one reply, each only when the server sent it.

    `token_ids` and `logprobs` have one entry per generated token when both are present.
    """
    out: dict[str, list] = {}
    content = (choice.get("logprobs") or {}).get("content") or []
    entries = [e for e in content if isinstance(e, dict)]
    if entries and all(isinstance(e.get("logprob"), int | float) for e in entries):
        out["logprobs"] = [float(e["logprob"]) for e in entries]
    ids = choice.get("token_ids")
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        out["token_ids"] = list(ids)
    elif entries:
        from_entries = [_token_id(e) for e in entries]
        if all(i is not None for i in from_entries):
            out["token_ids"] = from_entries  # type: ignore[assignment]
    prompt = response.get("prompt_token_ids") or choice.get("prompt_token_ids")
    if isinstance(prompt, list) and all(isinstance(i, int) for i in prompt):
        out["prompt_token_ids"] = list(prompt)
    return out


TOKEN_FIELDS = ("token_ids", "logprobs", "prompt_token_ids")
"""The keys `reply_tokens` may add to a reply's `extra`."""
