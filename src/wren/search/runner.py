"""Search over agent steps: greedy, best-of-n and MCTS on a ThoughtTree, at a budget of model calls.

Every node's workspace is a snapshot (environments/snapshot.py), so the search can go back to any
state and try another action there. The agent supplies the templates, the action parsing and the
observations; the search decides which messages the model sees next.

- greedy: one run from the root.
- best-of-n: independent runs from the root until the budget is spent; the best-scored one wins.
- mcts: select a leaf by PUCT, expand it with k sampled actions (distinct commands become children,
  how often each was sampled is its prior), evaluate each new child by the value function or by a
  rollout to the end, back the value up.

Finished runs are scored by `score_terminals`: the judge (search/judges.py: a check command in the
workspace, or in a batch the instance's own tests as `wren eval` runs them), the value function, or 1
for a submission. The chosen run's score is its reward.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from wren.agents.config import AgentConfig
from wren.agents.default import AgentResult, DefaultAgent
from wren.agents.repeats import command_of
from wren.environments.snapshot import Snapshot, WorkspaceSnapshots
from wren.exceptions import (
    ConfigError,
    LimitsExceeded,
    WrenError,
)
from wren.models.actions import parse_action
from wren.search.judges import CommandJudge, InstanceJudge, Judge
from wren.search.tree import Node, ThoughtTree
from wren.validation import StrictModel

STRATEGIES = ("greedy", "best-of-n", "mcts")
ValueFn = Callable[[list[dict]], float]


class BudgetSpent(WrenError):
    """The search used all the model calls it was given."""


class SearchConfig(StrictModel):
    """How the search spends its budget."""

    strategy: Literal["greedy", "best-of-n", "mcts"] = "greedy"
    """greedy (one run), best-of-n (independent runs) or mcts (PUCT tree search)."""
    budget: int = 30
    """Model calls the whole search may make."""
    k: int = 3
    """Actions sampled per expansion (mcts)."""
    c_puct: float = 1.5
    """Exploration weight in PUCT."""
    temperature: float | None = 0.8
    """Sampling temperature while expanding and in best-of-n runs (None = the model's own)."""
    evaluate: Literal["rollout", "value"] = "rollout"
    """How a new mcts node is valued: a rollout to the end, or the value function."""
    max_depth: int = 20
    """Most steps of one run (from the root to a leaf)."""
    score_terminals: Literal["judge", "value", "submitted"] = "judge"
    """What scores a finished run: the judge, the value function, or 1 for a submission."""


@dataclass
class SearchResult:
    """The tree, the chosen run, and what the search cost."""

    tree: ThoughtTree
    chosen: Node | None
    model_calls: int
    wall_seconds: float
    exit_status: str
    submission: str
    reward: float | None

    def meta(self, config: SearchConfig) -> dict[str, Any]:
        return {
            "strategy": config.strategy,
            "budget": config.budget,
            "k": config.k,
            "c_puct": config.c_puct,
            "model_calls": self.model_calls,
            "wall_seconds": round(self.wall_seconds, 3),
            "chosen": self.chosen.id if self.chosen else None,
            "exit_status": self.exit_status,
            "reward": self.reward,
        }


class TreeSearch:
    """Runs one task by search; `agent` is a DefaultAgent whose model and environment are used."""

    def __init__(
        self,
        agent: DefaultAgent,
        config: SearchConfig,
        *,
        snapshots: WorkspaceSnapshots | None = None,
        judge: Judge | None = None,
        value_fn: ValueFn | None = None,
    ):
        if config.budget < 1:
            raise ConfigError(f"config key 'search.budget' must be at least 1, not {config.budget}")
        if config.k < 1:
            raise ConfigError(f"config key 'search.k' must be at least 1, not {config.k}")
        needs_value = config.evaluate == "value" and config.strategy == "mcts"
        if (needs_value or config.score_terminals == "value") and value_fn is None:
            raise ConfigError(
                "the search is set to use a value function but none was given (search.evaluate / score_terminals)"
            )
        if config.score_terminals == "judge" and judge is None:
            raise ConfigError("search.score_terminals is 'judge' but no judge was given (e.g. --judge CMD)")
        self.agent, self.config = agent, config
        self.env, self.model = agent.env, agent.model
        self.snapshots = snapshots or WorkspaceSnapshots(agent.env)
        self.judge, self.value_fn = judge, value_fn
        self.calls = 0
        self.tree: ThoughtTree | None = None
        self._current: str | None = None

    # -- one step -------------------------------------------------------------------------------
    def _restore(self, node: Node) -> None:
        assert node.snapshot is not None
        if node.snapshot.get("commit") == self._current:
            return  # the workspace is this node's already: the last step saved it
        self.snapshots.restore(Snapshot.from_dict(node.snapshot))
        self._current = node.snapshot.get("commit")

    def _save(self) -> dict[str, Any]:
        snapshot = self.snapshots.save().to_dict()
        self._current = snapshot["commit"]
        return snapshot

    def _end(self, node: Node, status: str) -> Node:
        """Mark `node` as where a run ended (a limit reached before its next call) and score it."""
        node.terminal, node.exit_status = True, status
        self._restore(node)
        node.reward = self._score_terminal(node)
        return node

    def _sample(self, prefix: list[dict], depth: int, *, explore: bool) -> dict:
        """One model call on `prefix`; counts against the budget."""
        if self.calls >= self.config.budget:
            raise BudgetSpent(f"budget of {self.config.budget} model calls spent")
        agent = self.agent
        agent.restore(replace(agent.state(), messages=list(prefix), n_steps=depth))
        self.calls += 1
        return agent.query(temperature=self.config.temperature if explore else None)

    def _command(self, message: dict) -> str | None:
        return command_of(message, self.agent.config.action_format)

    def _child(self, parent: Node, message: dict, prefix: list[dict]) -> Node:
        """Run `message`'s action from `parent`'s state; the new node holds the result and a snapshot."""
        tree, agent = self.tree, self.agent
        assert tree is not None
        self._restore(parent)
        agent.restore(replace(agent.state(), messages=[*prefix, message]))
        command = ""

        def act() -> dict[str, Any]:
            nonlocal command
            command = parse_action(message, agent.config.action_format).command
            return agent.execute_action(message, command)

        outcome = agent.attempt(act)
        status, submission = outcome.exit_status, outcome.submission
        added = agent.state().messages[len(prefix) :]
        if status:
            added.append({"role": "exit", "content": submission, "extra": {"exit_status": status}})
        node = tree.add_child(
            parent,
            messages=added,
            action=command or "(no action)",
            terminal=bool(status),
            exit_status=status,
            submission=submission,
            snapshot=self._save(),
        )
        if not node.terminal and tree.depth(node) >= self.config.max_depth:
            node.terminal, node.exit_status = True, "LimitsExceeded"
        if node.terminal:
            node.reward = self._score_terminal(node)
        return node

    def _score_terminal(self, node: Node) -> float:
        how = self.config.score_terminals
        if how == "judge":
            assert self.judge is not None
            self._restore(node)
            reward = float(self.judge(self.env, node))
            self._current = None  # the check may leave files behind (caches): restore before the next step
            return reward
        if how == "value":
            assert self.value_fn is not None
            return float(self.value_fn(self.tree.messages(node)))  # type: ignore[union-attr]
        return 1.0 if node.exit_status == "Submitted" else 0.0

    # -- strategies -----------------------------------------------------------------------------
    def rollout(self, node: Node, *, explore: bool) -> Node:
        """Step from `node` with one sample per step until the run ends; returns the last node."""
        tree = self.tree
        assert tree is not None
        while not node.terminal:
            prefix = tree.messages(node)
            try:
                message = self._sample(prefix, tree.depth(node), explore=explore)
            except LimitsExceeded:
                return self._end(node, "LimitsExceeded")
            child = self._child(node, message, prefix)
            child.prior = 1.0
            node = child
        return node

    def expand(self, node: Node) -> list[Node]:
        """Sample k actions at `node`; each distinct command becomes a child, its prior its share of samples."""
        tree = self.tree
        assert tree is not None
        prefix = tree.messages(node)
        counts: dict[str, int] = {}
        firsts: dict[str, dict] = {}
        existing = {tree.nodes[c].action: tree.nodes[c] for c in node.children}
        for _ in range(self.config.k):
            try:
                message = self._sample(prefix, tree.depth(node), explore=True)
            except BudgetSpent:
                if not counts:
                    raise
                break
            except LimitsExceeded:
                self._end(node, "LimitsExceeded")
                return []
            key = self._command(message) or f"(format error {len(firsts)})"
            counts[key] = counts.get(key, 0) + 1
            firsts.setdefault(key, message)
        total = sum(counts.values())
        new = []
        for key, message in firsts.items():
            child = existing.get(key)
            if child is None:
                child = self._child(node, message, prefix)
                new.append(child)
            child.prior = counts[key] / total
        for c in node.children:  # children not sampled this time keep a small share
            if tree.nodes[c].action not in counts:
                tree.nodes[c].prior = min(tree.nodes[c].prior, 1.0 / (total + 1))
        node.expanded = True
        return new

    def evaluate(self, node: Node) -> float:
        if node.terminal:
            return float(node.reward or 0.0)
        if self.config.evaluate == "value":
            assert self.value_fn is not None
            node.estimate = float(self.value_fn(self.tree.messages(node)))  # type: ignore[union-attr]
            return node.estimate
        end = self.rollout(node, explore=False)
        node.estimate = float(end.reward or 0.0)
        # The rollout's own nodes were visited once on the way down.
        for n in self.tree.path(end)[len(self.tree.path(node)) :]:  # type: ignore[union-attr]
            n.visits += 1
            n.value_sum += node.estimate
        return node.estimate

    def _mcts(self) -> None:
        tree = self.tree
        assert tree is not None
        while not tree.exhausted(tree.root):
            leaf = tree.select(self.config.c_puct)
            if leaf.terminal:
                tree.backup(leaf, float(leaf.reward or 0.0))
                continue
            for child in self.expand(leaf):
                tree.backup(child, self.evaluate(child))

    def run(self, task: str, **template_vars: Any) -> SearchResult:
        """Search for a solution of `task`; the workspace ends as the chosen run left it."""
        start = time.monotonic()
        self.agent.begin(task, **template_vars)
        opening = self.agent.state().messages
        self.tree = tree = ThoughtTree(opening, self._save())
        tree.root.expanded = self.config.strategy != "mcts"
        with contextlib.suppress(BudgetSpent):
            if self.config.strategy == "greedy":
                end = self.rollout(tree.root, explore=False)
                tree.backup(end, float(end.reward or 0.0))
            elif self.config.strategy == "best-of-n":
                while True:
                    end = self.rollout(tree.root, explore=True)
                    tree.backup(end, float(end.reward or 0.0))
            else:
                self._mcts()
        chosen = tree.best_terminal()
        if chosen is not None:
            self._restore(chosen)
        return SearchResult(
            tree=tree,
            chosen=chosen,
            model_calls=self.calls,
            wall_seconds=time.monotonic() - start,
            exit_status=chosen.exit_status if chosen else "BudgetSpent",
            submission=chosen.submission if chosen else "",
            reward=chosen.reward if chosen else None,
        )


def chosen_result(result: SearchResult, cost: float = 0.0) -> AgentResult:
    """The chosen run as an agent result (its messages, from the root to the chosen node)."""
    messages = result.tree.messages(result.chosen) if result.chosen else result.tree.root.messages
    steps = result.tree.depth(result.chosen) if result.chosen else 0
    return AgentResult(result.exit_status, result.submission, steps, cost, messages)


class SearchRunner:
    """Stands in for `run_agent` in a batch (`wren batch --search`): one search per instance.

    The judge of an instance's finished runs is its own tests (`InstanceJudge`, through `wren
    eval`'s judge with `eval_config`), unless `judge_command` names one command for all instances.
    With `value_dir`, the value model guides the search and ranks finished runs, and the judge
    scores only the chosen run.
    """

    def __init__(
        self, search: SearchConfig, judge_command: str = "", value_dir: str = "", eval_config: Any = None
    ):
        self.search, self.judge_command, self.value_dir = search, judge_command, value_dir
        self.eval_config = eval_config
        self._value: Any = None

    def _value_fn(self) -> ValueFn | None:
        if self.value_dir and self._value is None:
            from wren.search.value import ValueModel

            self._value = ValueModel.load(self.value_dir)
        return self._value

    def __getstate__(self) -> dict[str, Any]:  # Ray ships the runner; the loaded model stays behind
        return {**self.__dict__, "_value": None}

    def judge_for(self, instance: dict[str, Any] | None, output_dir: str | Path) -> Judge | None:
        """The judge of one instance's runs; None when finished runs are scored without one."""
        if self.judge_command:
            return CommandJudge(self.judge_command)
        if instance is None or self.eval_config is None:
            return None
        return InstanceJudge(instance, self.eval_config, Path(output_dir) / "judge")

    def __call__(
        self, config: Any, task: str, *, env: Any, model: Any, output_dir: str | Path, instance_id: str = "run",
        hooks: Any = (), instance: dict[str, Any] | None = None,
    ) -> AgentResult:  # fmt: skip
        search = self.search
        if self.value_dir:
            search = search.model_copy(update={"evaluate": "value", "score_terminals": "value"})
        judge = self.judge_for(instance, output_dir) if search.score_terminals != "submitted" else None
        result = run_search(
            config, task, env=env, model=model, output_dir=output_dir, search=search,
            judge=judge, instance_id=instance_id, value_fn=self._value_fn(),
        )  # fmt: skip
        return chosen_result(result, float(getattr(model, "cost", 0.0) or 0.0))


def search_from_options(strategy: str, budget: int, k: int, score: str = "judge") -> SearchConfig:
    """The search that `--search`, `--budget`, `--k` and `--score` ask for; a ConfigError names a
    wrong option."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--search must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if budget < 1 or k < 1:
        raise ConfigError(f"--budget and --k must be at least 1, not {budget} and {k}")
    if score not in ("judge", "value", "submitted"):
        raise ConfigError(f"--score must be one of judge, value, submitted, not {score!r}")
    return SearchConfig(strategy=strategy, budget=budget, k=k, score_terminals=score)  # type: ignore[arg-type]


def batch_search_runner(
    search: SearchConfig, judge_command: str, value_dir: str, config: Any
) -> SearchRunner:
    """The search of `wren batch --search`: each instance judged by `judge_command` or by its own
    tests as `wren eval` runs them with the batch's `config`, guided by the value model in `value_dir`."""
    from wren.bench.evaluate import judge_config

    if search.score_terminals == "value" and not value_dir:
        raise ConfigError("--score value needs --value DIR (a value model)")
    # Judge checkouts go where the batch puts its own (BatchRunner sets the root).
    return SearchRunner(search, judge_command, value_dir, eval_config=judge_config(config))


def make_agent(model: Any, env: Any, agent_config: AgentConfig) -> DefaultAgent:
    """A DefaultAgent used only for its templates, parsing and observations."""
    return DefaultAgent(model, env, config=agent_config)


def run_search(
    config: Any,
    task: str,
    *,
    env: Any,
    model: Any,
    output_dir: str | Path,
    search: SearchConfig,
    judge_command: str = "",
    judge: Judge | None = None,
    instance_id: str = "run",
    value_fn: ValueFn | None = None,
) -> SearchResult:
    """`wren run --search`: search, save the tree and the chosen run's trajectory in `output_dir`.

    The judge is `judge`, or a `CommandJudge` of `judge_command`; without either, finished runs
    score 1 for a submission (unless the value function scores them)."""
    from wren.run import new_program_id, release_at_gateway
    from wren.trajectory import TrajectoryRecorder

    model.program_id = new_program_id(instance_id)
    agent = make_agent(model, env, config.agent)
    if judge is None and judge_command:
        judge = CommandJudge(judge_command)
    if judge is None and search.score_terminals == "judge":
        search = search.model_copy(update={"score_terminals": "submitted"})
    searcher = TreeSearch(agent, search, judge=judge, value_fn=value_fn)
    try:
        result = searcher.run(task)
    finally:
        release_at_gateway(model)
    if judge is not None and result.chosen is not None and search.score_terminals != "judge":
        # The final reward is the judge's, whatever ranked the runs during the search.
        searcher._restore(result.chosen)
        result.reward = result.chosen.reward = judge(env, result.chosen)
    output_dir = Path(output_dir)
    judged = judge.summary() if isinstance(judge, InstanceJudge) else judge_command
    # Every call's tokens, the samples that expansion merged into one child included.
    tokens = {k: int(getattr(model, f"{k}_tokens", 0) or 0) for k in ("prompt", "completion")}
    result.tree.save(output_dir, **result.meta(search), judge=judged, task=task, tokens=tokens)
    public = {
        "agent": config.agent.model_dump(),
        "search": search.model_dump(),
        "program_id": model.program_id,
    }
    recorder = TrajectoryRecorder(output_dir, instance_id, config=public)
    output_dir.mkdir(parents=True, exist_ok=True)
    recorder.on_finish(agent, chosen_result(result))
    return result
