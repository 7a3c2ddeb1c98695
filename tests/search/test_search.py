"""Search over real steps: a real git repo, the local environment, snapshots, a judge command,
and a scripted policy whose first idea is wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.peers.policy_model import SUBMIT, DepthPolicyModel, bash
from tests.peers.wheelhouse import shared_dirs  # noqa: F401 (a fixture)
from wren.agents.config import AgentConfig
from wren.environments.local import LocalEnvironment
from wren.exceptions import ConfigError
from wren.search.runner import CommandJudge, SearchConfig, TreeSearch, make_agent
from wren.validation import read_yaml, validate

WRONG = bash("sed -i 's/a - b/a * b/' calc.py", "multiply")
RIGHT = bash("sed -i 's/a - b/a + b/' calc.py", "add")
JUDGE = f"{sys.executable} -c 'import calc; assert calc.add(2, 3) == 5'"


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    subprocess.run(
        "git init -q -b main . && git -c user.email=t@t -c user.name=t commit -qm base --allow-empty && "
        "git add -A && git -c user.email=t@t -c user.name=t commit -qm code",
        shell=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    return tmp_path


def _search(repo, strategy, budget, replies, **cfg):
    model = DepthPolicyModel(replies)
    env = LocalEnvironment(cwd=str(repo))
    agent_config = validate(AgentConfig, read_yaml("default")["agent"], where="agent")
    agent = make_agent(model, env, agent_config)
    config = SearchConfig(strategy=strategy, budget=budget, **cfg)
    search = TreeSearch(agent, config, judge=CommandJudge(JUDGE))
    return search.run("Fix add in calc.py"), model


def test_greedy_follows_the_first_idea_and_the_judge_scores_it(repo):
    result, model = _search(repo, "greedy", 10, [[WRONG, RIGHT], [SUBMIT]])
    assert result.exit_status == "Submitted" and result.reward == 0.0
    assert result.model_calls == 2 == model.n_calls
    assert "a * b" in (repo / "calc.py").read_text()


def test_best_of_n_runs_again_from_the_restored_root(repo):
    result, _ = _search(repo, "best-of-n", 4, [[WRONG, RIGHT], [SUBMIT]])
    assert result.model_calls == 4
    rewards = sorted(n.reward for n in result.tree.terminals())
    assert rewards == [0.0, 1.0]
    assert result.reward == 1.0
    # The workspace is the chosen run's; the other run's edit was undone by the restore.
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_mcts_expands_distinct_actions_with_priors_and_backs_up_rollout_returns(repo):
    # At the root three samples give WRONG twice and RIGHT once: priors 2/3 and 1/3.
    replies = [[WRONG, RIGHT, WRONG], [SUBMIT]]
    result, model = _search(repo, "mcts", 6, replies, k=3, c_puct=1.0)
    tree = result.tree
    root_children = [tree.nodes[c] for c in tree.root.children]
    by_action = {n.action: n for n in root_children}
    assert set(by_action) == {"sed -i 's/a - b/a * b/' calc.py", "sed -i 's/a - b/a + b/' calc.py"}
    wrong, right = by_action["sed -i 's/a - b/a * b/' calc.py"], by_action["sed -i 's/a - b/a + b/' calc.py"]
    assert (wrong.prior, right.prior) == (pytest.approx(2 / 3), pytest.approx(1 / 3))
    # Each child was valued by a rollout to a submission the judge scored.
    assert wrong.estimate == 0.0 and right.estimate == 1.0
    assert right.value == 1.0 and wrong.value == 0.0
    assert tree.root.visits == 2 and tree.root.value == 0.5
    assert result.reward == 1.0 and result.model_calls <= 6 and model.n_calls == result.model_calls
    assert "a + b" in (repo / "calc.py").read_text()
    # Expansion samples at the search temperature; rollouts use the model's own.
    assert model.temperatures[:3] == [0.8, 0.8, 0.8] and model.temperatures[3] == 0.0
    assert model.config.temperature == 0.0  # asked per call, never set on the model


def test_mcts_beats_greedy_at_the_same_budget(repo, tmp_path):
    replies = [[WRONG, RIGHT], [SUBMIT]]
    greedy, _ = _search(repo, "greedy", 6, replies)
    subprocess.run(["git", "checkout", "-q", "--", "calc.py"], cwd=repo, check=True)
    mcts, _ = _search(repo, "mcts", 6, replies, k=2)
    assert (greedy.reward, mcts.reward) == (0.0, 1.0)


def test_budget_counts_model_calls(repo):
    # A policy that never submits: the search stops when the budget is spent.
    result, model = _search(repo, "mcts", 5, [[bash("ls"), bash("pwd")]], k=2)
    assert model.n_calls == 5 == result.model_calls
    assert result.exit_status == "BudgetSpent" and result.chosen is None


def test_bad_settings_are_clear_errors(repo):
    with pytest.raises(ConfigError, match="search.budget"):
        _search(repo, "mcts", 0, [[SUBMIT]])
    model = DepthPolicyModel([[SUBMIT]])
    agent_config = validate(AgentConfig, read_yaml("default")["agent"], where="agent")
    agent = make_agent(model, LocalEnvironment(cwd=str(repo)), agent_config)
    with pytest.raises(ConfigError, match="no judge"):
        TreeSearch(agent, SearchConfig())
    with pytest.raises(ConfigError, match="value function"):
        TreeSearch(agent, SearchConfig(strategy="mcts", evaluate="value"), judge=CommandJudge("true"))


def test_wren_run_search_saves_the_tree_and_inspect_shows_it(buggy_repo, scripted_server, tmp_path):
    from tests.conftest import SUBMIT as SUBMIT_DIFF
    from tests.test_cli_run import wren

    server = scripted_server([WRONG, SUBMIT_DIFF, RIGHT, SUBMIT_DIFF])
    out = tmp_path / "out"
    proc = wren(
        "run", "-t", "add() subtracts; fix it.", "-m", "openai/scripted-model",
        "-c", f"model.api_base={server.url}", "--cwd", str(buggy_repo), "--yolo", "-o", str(out),
        "--search", "best-of-n", "--budget", "4", "--judge", JUDGE,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "by best-of-n after 4 model calls" in proc.stdout and "reward 1" in proc.stdout
    assert len([r for r in server.requests if r["path"].endswith("/chat/completions")]) == 4
    traj = json.loads((out / "run.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Submitted"
    assert "+    return a + b" in traj["info"]["submission"]
    tree = json.loads((out / "tree.json").read_text())
    assert tree["strategy"] == "best-of-n" and tree["model_calls"] == 4 and len(tree["nodes"]) == 5
    shown = wren("inspect", str(out), "--list")
    assert shown.returncode == 0, shown.stderr
    assert "strategy=best-of-n" in shown.stdout and "a + b" in shown.stdout and "reward=1" in shown.stdout
    bad = wren("run", "-t", "x", "-m", "openai/m", "--search", "beam", "--cwd", str(buggy_repo), "--yolo")
    assert (
        bad.returncode != 0 and "--search must be one of greedy, best-of-n, mcts" in bad.stdout + bad.stderr
    )


def test_mcts_guided_by_a_value_function_and_best_of_n_ranked_by_it(repo):
    def verifier(messages):  # a stand-in verifier: it trusts runs whose last edit adds
        edits = [m["content"] for m in messages if m["role"] == "assistant" and "sed" in m["content"]]
        return 1.0 if edits and "a + b" in edits[-1] else 0.1

    model = DepthPolicyModel([[WRONG, RIGHT], [SUBMIT]])
    agent_config = validate(AgentConfig, read_yaml("default")["agent"], where="agent")
    agent = make_agent(model, LocalEnvironment(cwd=str(repo)), agent_config)
    config = SearchConfig(strategy="mcts", budget=4, k=2, evaluate="value", score_terminals="value")
    result = TreeSearch(agent, config, value_fn=verifier).run("Fix add")
    root_children = [result.tree.nodes[c] for c in result.tree.root.children]
    assert sorted(n.estimate for n in root_children) == [0.1, 1.0]
    # The second expansion goes below the child the value function prefers.
    assert result.chosen is not None and result.chosen.reward == 1.0
    assert result.tree.nodes[result.chosen.parent].estimate == 1.0
    assert "a + b" in (repo / "calc.py").read_text()


def test_wren_batch_search_runs_best_of_n_per_instance(tmp_path):
    from tests.peers.fixture_repo import build_calc_repo, write_jsonl
    from tests.peers.scripted_batch import FIX, write_config
    from tests.peers.scripted_batch import SUBMIT as BATCH_SUBMIT
    from tests.test_cli_run import wren

    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", [inst])
    wrong = bash("sed -i 's/^    return x$/    return lo/' calc/ops.py", "clamp low")
    outputs = [wrong, bash(BATCH_SUBMIT), bash(FIX), bash(BATCH_SUBMIT)]
    write_config(tmp_path / "cfg.yaml", outputs)
    judge = "python3 -c 'from calc.ops import clamp; assert clamp(50, 0, 10) == 10 and clamp(5, 0, 10) == 5'"
    out = tmp_path / "out"
    proc = wren(
        "batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
        "-c", str(tmp_path / "cfg.yaml"), "--search", "best-of-n", "--budget", "4", "--judge", judge,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    preds = json.loads((out / "preds.json").read_text())
    patch = preds[inst["instance_id"]]["model_patch"]
    assert "+    if x > hi:" in patch and "+    return lo" not in patch
    tree = json.loads((out / inst["instance_id"] / "tree.json").read_text())
    assert tree["model_calls"] == 4 and tree["reward"] == 1.0


def test_wren_batch_search_judges_each_node_by_the_instances_own_tests(
    tmp_path,
    scripted_server,
    shared_dirs,  # noqa: F811 (the imported fixture)
    monkeypatch,
):
    """No --judge: a finished node's reward is the instance's FAIL_TO_PASS / PASS_TO_PASS verdict."""
    from tests.peers.fixture_repo import build_calc_repo, write_jsonl
    from tests.peers.scripted_batch import FIX
    from tests.peers.scripted_batch import SUBMIT as BATCH_SUBMIT
    from tests.peers.wheelhouse import offline_pip
    from tests.test_cli_run import wren

    offline_pip(monkeypatch, shared_dirs[0])
    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", [inst])
    # Returns lo where it should return hi: test_clamp_high (FAIL_TO_PASS) still fails.
    wrong = bash("sed -i 's/^    return x$/    return lo/' calc/ops.py", "clamp low")
    server = scripted_server([wrong, bash(BATCH_SUBMIT), bash(FIX), bash(BATCH_SUBMIT)])
    out = tmp_path / "out"
    proc = wren(
        "batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
        "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}",
        "-c", f"bench.workspace.env_cache={shared_dirs[1]}", "--search", "best-of-n", "--budget", "4",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(server.completions) == 4
    inst_dir = out / inst["instance_id"]
    tree = json.loads((inst_dir / "tree.json").read_text())
    terminals = [n for n in tree["nodes"] if n["terminal"]]
    by_reward = {n["reward"]: n for n in terminals}
    assert sorted(by_reward) == [0.0, 1.0]
    assert (
        "+    return lo" in by_reward[0.0]["submission"] and "+    if x > hi:" in by_reward[1.0]["submission"]
    )
    judged = tree["judge"]
    assert judged["kind"] == "instance tests" and judged["evaluations"] == 2
    assert sorted(judged["outcomes"].values()) == ["resolved", "unresolved"]
    assert tree["reward"] == 1.0
    # The verdicts are wren eval's: the test patch applied, the instance's tests run and graded.
    reports = [
        json.loads(p.read_text())[inst["instance_id"]] for p in sorted(inst_dir.glob("judge/*/report.json"))
    ]
    failing = sorted(t for r in reports for t in r["tests_status"]["FAIL_TO_PASS"]["failure"])
    assert failing == ["tests/test_ops.py::test_clamp_high"]
    assert [r["outcome"] for r in reports] == ["unresolved", "resolved"]
    assert all(len(r["tests_status"]["PASS_TO_PASS"]["success"]) == 2 for r in reports)
    preds = json.loads((out / "preds.json").read_text())
    assert "+    if x > hi:" in preds[inst["instance_id"]]["model_patch"]
    bad = wren("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(tmp_path / "o2"), "--repos",
               str(tmp_path / "repos"), "--search", "mcts", "--score", "value", "-m", "openai/m")  # fmt: skip
    assert bad.returncode != 0 and "--score value needs --value DIR" in bad.stdout + bad.stderr


def test_a_search_that_spends_its_budget_is_an_agent_outcome_not_a_failure(tmp_path):
    from tests.peers.fixture_repo import build_calc_repo, write_jsonl
    from tests.peers.scripted_batch import write_config
    from tests.test_cli_run import wren

    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", [inst])
    write_config(tmp_path / "cfg.yaml", [bash("ls"), bash("pwd")])
    out = tmp_path / "out"
    proc = wren(
        "batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
        "-c", str(tmp_path / "cfg.yaml"), "--search", "greedy", "--budget", "2", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = json.loads((out / "exit_statuses.json").read_text())[inst["instance_id"]]
    assert entry["exit_status"] == "BudgetSpent" and "failure" not in entry
