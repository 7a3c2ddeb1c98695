"""PPO/GRPO math by hand, and real updates of a tiny randomly initialised model with a LoRA."""

from __future__ import annotations

import json
import math

import pytest

from wren.exceptions import ConfigError
from wren.learn.train.rl.loss import (
    RLConfig,
    RolloutBatch,
    collect,
    gae,
    group_advantages,
    ppo_loss,
    ppo_update,
)

torch = pytest.importorskip("torch")


def test_gae_matches_the_hand_computation():
    adv, ret = gae([0.0, 0.0, 1.0], [0.5, 0.6, 0.7], gamma=1.0, lam=0.5)
    # deltas: 0.1, 0.1, 0.3; A2 = 0.3, A1 = 0.1 + 0.5 * 0.3, A0 = 0.1 + 0.5 * A1
    assert adv == pytest.approx([0.225, 0.25, 0.3])
    assert ret == pytest.approx([0.725, 0.85, 1.0])
    adv, ret = gae([0.0, 0.0, 1.0], [0.5, 0.6, 0.7], gamma=1.0, lam=1.0)
    assert adv == pytest.approx([0.5, 0.4, 0.3]) and ret == pytest.approx([1.0, 1.0, 1.0])


def test_group_relative_advantages():
    assert group_advantages([1, 0, 0, 1, 1], ["a", "a", "b", "b", "c"], scale=False) == [
        0.5,
        -0.5,
        -0.5,
        0.5,
        0.0,
    ]
    scaled = group_advantages([1.0, 0.0], ["a", "a"])
    assert scaled == pytest.approx([1.0, -1.0], abs=1e-5)


def test_clipped_surrogate_by_hand():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 1.5, 0.5, 1.0]]))
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, stats = ppo_loss(new, old, adv, mask, clip_eps=0.2)
    # min(1.5, 1.2) = 1.2; min(-1.5, -1.2) = -1.5; min(-0.5, -0.8) = -0.8; the 4th token is masked.
    assert loss.item() == pytest.approx(-(1.2 - 1.5 - 0.8) / 3)
    assert stats.clip_fraction == pytest.approx(2 / 3)
    assert stats.ratio_max_deviation == pytest.approx(0.5)
    same, stats = ppo_loss(old, old, adv, mask, clip_eps=0.2, ref_logp=old, kl_coef=1.0)
    assert stats.ratio_max_deviation == 0.0 and stats.clip_fraction == 0.0 and stats.kl == 0.0


def _tiny_lora_policy():
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=64, sliding_window=16,
    )  # fmt: skip
    model = Gemma3ForCausalLM(config)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    return get_peft_model(model, lora)


def test_a_ppo_step_moves_the_ratio_engages_clipping_and_follows_the_advantage():
    policy = _tiny_lora_policy()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    action = torch.zeros(2, 12, dtype=torch.long)
    action[:, 6:] = 1  # the second half is what the policy "said"
    per_episode = group_advantages([1.0, 0.0], ["task", "task"])  # the first episode was resolved
    advantages = torch.tensor(per_episode)[:, None] * action.float()
    batch = collect(policy, RolloutBatch(ids, torch.ones_like(ids), action, advantages))
    old = batch.old_logprobs.clone()
    # Before any update the adapters are zero: policy = reference.
    assert torch.allclose(batch.old_logprobs, batch.ref_logprobs)

    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=3e-2)
    history = ppo_update(policy, optimizer, batch, RLConfig(epochs=8, clip_eps=0.1, kl_coef=0.01))
    assert history[0].ratio_max_deviation < 1e-5  # the first epoch sees the collected policy
    assert history[-1].ratio_max_deviation > 1e-2  # later epochs see the true ratio
    assert max(s.clip_fraction for s in history) > 0  # and the clip engages
    assert history[-1].kl > 0
    # The stored old log-probs were not touched; the new ones moved with the advantage's sign.
    assert torch.equal(batch.old_logprobs, old)
    with torch.no_grad():
        from wren.learn.train.rl.loss import token_logprobs

        new = token_logprobs(policy, ids, torch.ones_like(ids))
    m = action[:, 1:].bool()
    gain = (new - old)[0][m[0]].mean().item()
    loss_ = (new - old)[1][m[1]].mean().item()
    assert gain > 0 > loss_, (gain, loss_)
    assert math.isfinite(history[-1].loss)


def test_an_update_one_sequence_at_a_time_is_the_whole_batchs_update():
    from wren.learn.train.rl.loss import token_logprobs

    policy = _tiny_lora_policy()
    ids = torch.randint(0, 64, (3, 12), generator=torch.Generator().manual_seed(2))
    action = torch.zeros(3, 12, dtype=torch.long)
    action[0, 4:], action[1, 9:], action[2, 2:] = 1, 1, 1  # episodes with different numbers of actions
    advantages = torch.tensor([1.0, -0.5, 0.25])[:, None] * action.float()
    batch = collect(policy, RolloutBatch(ids, torch.ones_like(ids), action, advantages))
    assert torch.allclose(
        token_logprobs(policy, ids, torch.ones_like(ids), rows=3), batch.old_logprobs, atol=1e-6
    )
    trained = [p for p in policy.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in trained:  # move off the start, so the ratio, the clip and the KL are not trivial
            p.add_(torch.randn_like(p) * 0.3)

    whole, stats = ppo_loss(
        token_logprobs(policy, ids, torch.ones_like(ids), rows=3), batch.old_logprobs, advantages[:, 1:],
        action[:, 1:], 0.1, batch.ref_logprobs, 0.05,
    )  # fmt: skip
    expected = torch.autograd.grad(whole, trained)
    optimizer = torch.optim.SGD(trained, lr=0.0)  # a step that changes nothing leaves the gradients
    (history,) = ppo_update(policy, optimizer, batch, RLConfig(epochs=1, clip_eps=0.1, kl_coef=0.05))
    for got, want in zip([p.grad for p in trained], expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert history.loss == pytest.approx(stats.loss, abs=1e-6)
    assert history.clip_fraction == pytest.approx(stats.clip_fraction, abs=1e-6) and stats.clip_fraction > 0
    assert history.ratio_max_deviation == pytest.approx(stats.ratio_max_deviation, abs=1e-6)


def test_update_without_collected_log_probs_is_refused():
    policy = _tiny_lora_policy()
    ids = torch.zeros(1, 4, dtype=torch.long)
    batch = RolloutBatch(ids, torch.ones_like(ids), torch.ones_like(ids), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="collect"):
        ppo_update(policy, torch.optim.SGD(policy.parameters(), lr=0.1), batch, RLConfig())


def test_rl_iteration_on_episodes_of_a_tiny_model(tiny_model, tmp_path):
    from tests.learn.tiny import sample_records
    from wren.learn.train.rl.iteration import RLIterationConfig, rl_iteration

    records = [
        {"messages": r["messages"], "reward": float(i % 2 == 0), "group": f"task-{i // 2}"}
        for i, r in enumerate(sample_records(4))
    ]
    config = RLIterationConfig(
        model=str(tiny_model), output=str(tmp_path / "rl"), rl=RLConfig(epochs=5, lr=1e-2)
    )
    log = rl_iteration(records, config)
    assert (log["episodes"], log["groups"], log["mean_reward"]) == (4, 2, 0.5)
    steps = log["steps"]
    assert steps[0]["ratio_max_deviation"] < 1e-5 < steps[-1]["ratio_max_deviation"]
    assert max(s["clip_fraction"] for s in steps) > 0
    assert (tmp_path / "rl" / "adapter_config.json").is_file()
    # A second iteration continues the saved adapter and appends to the log.
    rl_iteration(records, config)
    assert len(json.loads((tmp_path / "rl" / "rl_log.json").read_text())) == 2
    # The next policy: the adapter merged into the base, a training directory of its own.
    from safetensors.torch import load_file

    from wren.learn.train.finetune import merge_adapter

    merged = merge_adapter(tiny_model, tmp_path / "rl", tmp_path / "merged")
    before, after = (
        load_file(str(tiny_model / "model.safetensors")),
        load_file(str(merged / "model.safetensors")),
    )
    changed = {k for k in before if k in after and not (before[k] == after[k]).all()}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed), changed
    assert (merged / "tokenizer_config.json").is_file()
    with pytest.raises(ConfigError, match="no LoRA adapter in .*adapter_config.json is missing"):
        merge_adapter(tiny_model, tmp_path / "nothing-here", tmp_path / "merged-2")


def _value_dir(tiny_model, tmp_path):
    from tests.learn.tiny import sample_records
    from wren.learn.train.rl.value import ValueConfig, train_value

    records = [{"messages": r["messages"][:k], "return": float(i % 2 == 0)} for i, r in enumerate(sample_records(4))
               for k in (2, 4)]  # fmt: skip
    config = ValueConfig(
        model=str(tiny_model), output=str(tmp_path / "value"), epochs=2, lr=3e-3, holdout=0.0
    )
    train_value(records, config)
    return tmp_path / "value"


def test_ppo_iteration_uses_the_value_models_gae_per_turn(tiny_model, tmp_path):
    from safetensors.torch import load_file

    from tests.learn.tiny import sample_records
    from wren.learn.train.rl.critic import episode_advantages, turn_states
    from wren.learn.train.rl.iteration import RLIterationConfig, rl_iteration, rollout_batch
    from wren.learn.train.rl.value import ValueModel
    from wren.serve.training_dir import load_tokenizer

    value_dir = _value_dir(tiny_model, tmp_path)
    records = [
        {"messages": r["messages"], "reward": float(i % 2 == 0), "group": f"task-{i // 2}"}
        for i, r in enumerate(sample_records(4))
    ]
    rl = RLConfig(epochs=5, lr=1e-2, lam=0.9)
    value_fn = ValueModel.load(value_dir)
    per_turn, values = episode_advantages(records, value_fn, rl)
    # Two assistant turns per episode: V(s_0), V(s_1) from the value model, the return at the end.
    assert [len(a) for a in per_turn] == [2, 2, 2, 2] and len(turn_states(records[0]["messages"])) == 2
    for record, adv, v in zip(records, per_turn, values, strict=True):
        expected, _ = gae([0.0, record["reward"]], v, rl.gamma, rl.lam)
        assert adv == pytest.approx(expected)
        assert v[0] == pytest.approx(value_fn(record["messages"][:2]), abs=1e-6)
    # Each turn's advantage lies on that turn's tokens, and nowhere else.
    tokenizer = load_tokenizer(str(tiny_model))
    batch = rollout_batch(tokenizer, records, 2048, per_turn)
    for i in range(len(records)):
        on = batch.action_mask[i].bool()
        got = sorted({round(float(a), 5) for a in batch.advantages[i][on]})
        assert got == sorted({round(a, 5) for a in per_turn[i]})
        assert (batch.advantages[i][~on] == 0).all()

    config = RLIterationConfig(
        model=str(tiny_model), output=str(tmp_path / "ppo"), rl=rl, method="ppo", value=str(value_dir)
    )
    log = rl_iteration(records, config)
    assert log["method"] == "ppo" and log["turns"] == 8
    steps = log["steps"]
    assert steps[0]["ratio_max_deviation"] < 1e-5 < steps[-1]["ratio_max_deviation"]
    # The LoRA's B matrices start at zero; after the update the adapter is no longer the identity.
    weights = load_file(str(tmp_path / "ppo" / "adapter_model.safetensors"))
    assert max(w.abs().max().item() for k, w in weights.items() if "lora_B" in k) > 0

    with pytest.raises(ConfigError, match="--value"):
        rl_iteration(
            records, RLIterationConfig(model=str(tiny_model), output=str(tmp_path / "x"), method="ppo")
        )


def test_wren_learn_rl_ppo_on_recorded_runs(tiny_model, tmp_path):
    from tests.peers.recorded_runs import FIX, record_wren_run
    from tests.test_cli_run import wren

    runs = [record_wren_run(tmp_path, name, FIX) for name in ("a", "b")]
    value_dir = _value_dir(tiny_model, tmp_path)
    out = tmp_path / "ppo"
    proc = wren("learn", "rl", *map(str, runs), "--model", str(tiny_model), "-o", str(out), "--method", "ppo",
                "--value", str(value_dir), "-c", "rl.epochs=3", "-c", "rl.lr=0.01", timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rl (ppo): 2 episodes" in proc.stderr
    log = json.loads((out / "rl_log.json").read_text())
    assert log[-1]["method"] == "ppo" and log[-1]["turns"] == 10
    bad = wren("learn", "rl", str(runs[0]), "--model", str(tiny_model), "-o", str(out), "--method", "dqn")
    assert bad.returncode != 0 and "--method must be grpo or ppo" in bad.stdout + bad.stderr


def test_a_batch_without_assistant_tokens_is_a_clear_error(tiny_model):
    from tests.learn.tiny import sample_records
    from wren.learn.train.rl.iteration import rollout_batch
    from wren.serve.training_dir import load_tokenizer

    records = [{"messages": r["messages"], "reward": 1.0, "group": "t"} for r in sample_records(2)]
    with pytest.raises(ConfigError, match="max_length 4"):
        rollout_batch(load_tokenizer(str(tiny_model)), records, 4)


def test_rl_records_keep_the_replies_that_broke_the_format_as_actions(tmp_path):
    from tests.peers.recorded_runs import FIX, record_wren_run
    from wren.learn.data.episodes import load_episodes
    from wren.learn.data.rewards import RewardConfig
    from wren.learn.train.rl.iteration import rl_records

    run = record_wren_run(tmp_path, "r", ["I will just think about it.", *FIX])
    (episode,) = load_episodes(run)
    assert episode.format_error_steps()  # the first reply had no bash block
    (record,) = rl_records([episode], RewardConfig())
    replies = [m for m in record["messages"] if m["role"] == "assistant"]
    assert replies[0]["content"].startswith("I will just think") and all(m["train"] for m in replies)
    # Its format penalty is what the update sees: a clean run of the same fix scores higher.
    (clean,) = rl_records(load_episodes(record_wren_run(tmp_path, "c", FIX)), RewardConfig())
    assert record["reward"] < clean["reward"]
