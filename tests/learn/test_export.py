"""Rewards, windows and the three export formats, on episodes built in the test."""

from __future__ import annotations

import pytest

from wren.config.loader import validate
from wren.exceptions import ConfigError
from wren.learn.data.episodes import Episode
from wren.learn.data.export import ExportConfig, dpo_records, sft_records, value_records
from wren.learn.data.rewards import RewardConfig, episode_return, reward_terms
from wren.learn.data.windows import approx_tokens, message_tokens, windows

GOLD = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return -x\n"


def reply(command: str, thought: str = "next") -> dict:
    return {"role": "assistant", "content": f"THOUGHT: {thought}\n\n```bash\n{command}\n```"}


def observation(text: str) -> dict:
    return {"role": "user", "content": f"<returncode>0</returncode>\n<output>\n{text}\n</output>"}


HEAD = [{"role": "system", "content": "You solve tasks."}, {"role": "user", "content": "Fix f in m.py."}]
BAD = {"role": "assistant", "content": "I think I should look at it."}  # no bash block
ERROR = {"role": "user", "content": "Format error: found no bash code blocks"}


def episode(replies: list[dict], *, outcome: str = "resolved", instance_id: str = "t-1", **kwargs) -> Episode:
    messages = list(HEAD)
    for i, r in enumerate(replies):
        messages.append(r)
        messages.append(ERROR if r is BAD else observation(f"output {i}"))
    messages.append({"role": "exit", "content": "", "extra": {"exit_status": "Submitted"}})
    f2p_ok = outcome == "resolved"
    verdict = {
        "outcome": outcome,
        "tests_status": {
            "FAIL_TO_PASS": {"success": ["a"] if f2p_ok else [], "failure": [] if f2p_ok else ["a"]},
            "PASS_TO_PASS": {"success": ["b", "c"], "failure": []},
        },
    }
    return Episode(
        instance_id=instance_id,
        messages=messages,
        exit_status="Submitted",
        patch=kwargs.pop("patch", GOLD),
        verdict=verdict,
        instance={"instance_id": instance_id, "patch": GOLD},
        **kwargs,
    )


def test_rewards_of_a_resolved_and_an_unresolved_run():
    good = episode([reply("cat m.py"), reply("sed -i s/x/-x/ m.py"), reply("submit")])
    bad = episode([BAD, reply("cat m.py"), reply("submit")], outcome="unresolved", patch="")
    config = RewardConfig(weights={"resolved": 1, "tests": 1, "similarity": 1, "format": 1, "steps": 1})
    g, b = reward_terms(good, config), reward_terms(bad, config)
    assert g == {"resolved": 1.0, "tests": 1.0, "similarity": 1.0, "format": 0.0, "steps": -0.03}
    assert b["resolved"] == 0 and b["tests"] == 0 and b["similarity"] == 0
    assert b["format"] == pytest.approx(-1 / 3)
    assert episode_return(good, config) > episode_return(bad, config)


def test_regressions_are_penalised_and_similarity_grades_partial_patches():
    ep = episode([reply("x")], outcome="unresolved")
    ep.verdict["tests_status"]["FAIL_TO_PASS"] = {"success": ["a"], "failure": ["b"]}
    ep.verdict["tests_status"]["PASS_TO_PASS"] = {"success": ["c", "d", "e"], "failure": ["f"]}
    ep.patch = GOLD.replace("-x", "x + 0")
    terms = reward_terms(ep, RewardConfig(weights={"tests": 1, "similarity": 1}))
    assert terms["tests"] == pytest.approx(0.5 - 0.25)
    assert 0.0 < terms["similarity"] < 1.0


def test_unknown_reward_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown reward .resolvd.*known: .*resolved"):
        validate(RewardConfig, {"weights": {"resolvd": 1.0}}, where="rewards")
    # A dotted path names any function.
    assert RewardConfig(weights={"wren.learn.data.rewards.resolved": 1.0})


def test_windows_fit_keep_the_task_and_hold_every_reply_once():
    replies = [reply(f"echo step {i} " + "word " * 60) for i in range(12)]
    messages = episode(replies).messages
    limit = 400
    cut = windows(messages, limit)
    assert len(cut) > 2
    trained = []
    for window in cut:
        assert sum(message_tokens(m, approx_tokens) for m in window) <= limit
        assert window[0] == HEAD[0] and window[1]["content"].startswith(HEAD[1]["content"])
        roles = [m["role"] for m in window[1:]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        trained += [m["content"] for m in window if m["role"] == "assistant"]
    assert trained == [r["content"] for r in replies]
    assert "earlier steps omitted" in cut[1][1]["content"]


def test_sft_takes_resolved_runs_and_masks_format_errors():
    good = episode([BAD, reply("cat m.py"), reply("submit")])
    failed = episode([reply("ls")], outcome="unresolved", instance_id="t-2")
    records = list(sft_records([good, failed], ExportConfig()))
    assert [r["instance_id"] for r in records] == ["t-1"]
    assistant = [m for m in records[0]["messages"] if m["role"] == "assistant"]
    assert [m["train"] for m in assistant] == [False, True, True]
    assert all(m["role"] != "exit" for m in records[0]["messages"])
    weighted = list(sft_records([good, failed], ExportConfig(select="reward", min_return=-10)))
    assert {r["instance_id"] for r in weighted} == {"t-1", "t-2"}
    assert weighted[0]["weight"] > weighted[-1]["weight"]


def test_dpo_pairs_share_a_prefix_and_prefer_the_better_run():
    better = episode([reply("cat m.py"), reply("sed -i s/x/-x/ m.py"), reply("submit")])
    worse = episode([reply("cat m.py"), reply("rm m.py"), reply("submit")], outcome="unresolved")
    pairs = list(dpo_records([worse, better], ExportConfig()))
    runs = [p for p in pairs if p["kind"] == "runs"]
    assert len(runs) == 1
    pair = runs[0]
    assert "sed -i" in pair["chosen"][0]["content"] and "rm m.py" in pair["rejected"][0]["content"]
    assert pair["prompt"][-1]["role"] == "user" and pair["prompt"][-2]["content"].endswith("cat m.py\n```")
    formatted = list(dpo_records([episode([BAD, reply("cat m.py")])], ExportConfig()))
    assert formatted[0]["kind"] == "format"
    assert formatted[0]["rejected"][0]["content"] == BAD["content"]
    assert "cat m.py" in formatted[0]["chosen"][0]["content"]


def test_value_records_carry_the_discounted_return():
    ep = episode([reply("a"), reply("b"), reply("c")])
    config = ExportConfig(gamma=0.5, rewards=RewardConfig(weights={"resolved": 1.0}))
    records = list(value_records([ep], config))
    assert [r["return"] for r in records] == [0.25, 0.5, 1.0]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[0]["messages"][-1]["role"] == "user"


def test_records_hold_what_the_run_showed_the_model():
    # The run capped each output it showed at about 10 tokens (40 characters); its trajectory
    # keeps them whole. Training data is the prompt the model saw.
    long_output = "x" * 400
    replies = [reply("pytest -q"), reply("cat m.py"), reply("submit")]
    capped = episode(replies, history={"max_observation_tokens": 10})
    for m in capped.messages:
        if m.get("role") == "user" and m is not HEAD[1]:
            m["content"] = long_output
    whole = Episode(**{**capped.__dict__, "history": {}})
    config = ExportConfig(max_tokens=4096)

    (record,) = sft_records([capped], config)
    outputs = [m["content"] for m in record["messages"][len(HEAD) :] if m["role"] == "user"]
    assert outputs and all(len(o) < 100 for o in outputs), "each output as the model saw it"
    # Every earlier reply is in the prompt of a later one, as in the run.
    assert [m["content"] for m in record["messages"] if m["role"] == "assistant"] == [
        r["content"] for r in replies
    ]
    (plain,) = sft_records([whole], config)
    assert all(long_output in m["content"] for m in plain["messages"][len(HEAD) :] if m["role"] == "user")

    last = list(value_records([capped], config))[-1]["messages"]
    assert all(len(m["content"]) < 100 for m in last[len(HEAD) :] if m["role"] == "user")
    assert capped.messages[3]["content"] == long_output, "the episode itself is left whole"
