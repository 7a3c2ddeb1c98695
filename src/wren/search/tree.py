"""The ThoughtTree: nodes of an agent's run (messages, workspace snapshot, visits, value), PUCT
selection with the policy's priors, and backup of returns.

A node is the state after one action: the messages that step added, the snapshot of the workspace
then, and whether the run ended there (submitted or a limit). The root holds the opening messages.
The tree has no I/O: search.py drives the model and the environment and calls `select`, `expand`
and `backup` here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.exceptions import WrenError

TREE_FILE = "tree.json"


class TreeError(WrenError):
    """A tree file that cannot be read, or an operation the tree's state does not allow."""


@dataclass
class Node:
    """One state of the run: what the step added, the workspace then, and the search statistics."""

    id: int
    parent: int | None
    messages: list[dict] = field(default_factory=list)
    action: str = ""
    prior: float = 1.0
    snapshot: dict[str, Any] | None = None
    visits: int = 0
    value_sum: float = 0.0
    terminal: bool = False
    exit_status: str = ""
    submission: str = ""
    reward: float | None = None
    estimate: float | None = None
    children: list[int] = field(default_factory=list)
    expanded: bool = False

    @property
    def value(self) -> float:
        """Mean backed-up return (0 before any visit)."""
        return self.value_sum / self.visits if self.visits else 0.0


class ThoughtTree:
    """Nodes by id; node 0 is the root."""

    def __init__(self, root_messages: list[dict], root_snapshot: dict[str, Any] | None = None):
        self.nodes: list[Node] = [Node(0, None, messages=list(root_messages), snapshot=root_snapshot)]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add_child(self, parent: Node, **fields: Any) -> Node:
        node = Node(len(self.nodes), parent.id, **fields)
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def path(self, node: Node) -> list[Node]:
        """Root ... node."""
        chain = [node]
        while chain[-1].parent is not None:
            chain.append(self.nodes[chain[-1].parent])
        return chain[::-1]

    def messages(self, node: Node) -> list[dict]:
        """The whole conversation up to `node`: the messages of every node on its path."""
        return [m for n in self.path(node) for m in n.messages]

    def depth(self, node: Node) -> int:
        return len(self.path(node)) - 1

    def puct(self, parent: Node, child: Node, c_puct: float) -> float:
        """Q + c * P * sqrt(N_parent) / (1 + N_child), as in AlphaZero; unvisited children score Q = 0."""
        explore = c_puct * child.prior * math.sqrt(max(parent.visits, 1)) / (1 + child.visits)
        return child.value + explore

    def select(self, c_puct: float) -> Node:
        """Descend from the root by PUCT to a node that is not expanded yet or ends the run.

        Subtrees whose every leaf is terminal and already scored are skipped, so a search never spends
        its budget re-visiting finished runs while open ones remain.
        """
        node = self.root
        while node.expanded and not node.terminal:
            open_children = [self.nodes[c] for c in node.children if not self.exhausted(self.nodes[c])]
            if not open_children:
                return node
            node = max(open_children, key=lambda c: (self.puct(node, c, c_puct), -c.id))
        return node

    def exhausted(self, node: Node) -> bool:
        """True when nothing below `node` is left to explore."""
        if node.terminal:
            return True
        if not node.expanded:
            return False
        return all(self.exhausted(self.nodes[c]) for c in node.children)

    def backup(self, node: Node, value: float) -> None:
        """Add `value` to every node from `node` up to the root."""
        for n in self.path(node):
            n.visits += 1
            n.value_sum += value

    def terminals(self) -> list[Node]:
        return [n for n in self.nodes if n.terminal]

    def best_terminal(self) -> Node | None:
        """The finished run to submit: highest score, then most visited, then earliest."""
        done = [n for n in self.terminals() if n.exit_status == "Submitted"] or self.terminals()
        if not done:
            return None
        return max(done, key=lambda n: (_score(n), n.visits, -n.id))

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "nodes": [_node_dict(n) for n in self.nodes]}

    def save(self, path: str | Path, **meta: Any) -> Path:
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / TREE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**self.to_dict(), **meta}, indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[ThoughtTree, dict[str, Any]]:
        """The tree in `path` (a tree.json or the run directory holding one) and its other keys."""
        path = Path(path)
        if path.is_dir():
            path = path / TREE_FILE
        try:
            data = json.loads(path.read_text())
            nodes = [Node(**{k: v for k, v in d.items() if k != "value"}) for d in data["nodes"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TreeError(f"{path} is not a Wren search tree: {e}") from None
        tree = cls.__new__(cls)
        tree.nodes = nodes
        return tree, {k: v for k, v in data.items() if k not in ("nodes",)}


def _score(node: Node) -> float:
    if node.reward is not None:
        return node.reward
    return node.estimate if node.estimate is not None else node.value


def _node_dict(node: Node) -> dict[str, Any]:
    data = {k: getattr(node, k) for k in Node.__dataclass_fields__}
    data["value"] = node.value
    return data


def render_tree(tree: ThoughtTree, meta: dict[str, Any] | None = None, width: int = 70) -> str:
    """The tree as indented text: one line per node with action, prior, visits, value and outcome."""
    lines = []
    if meta:
        summary = ", ".join(
            f"{k}={meta[k]}" for k in ("strategy", "budget", "model_calls", "chosen") if k in meta
        )
        if summary:
            lines.append(summary)

    def walk(node: Node, indent: str) -> None:
        action = node.action.strip().splitlines()[0] if node.action.strip() else "(root)"
        if len(action) > width:
            action = action[: width - 1] + "…"
        outcome = ""
        if node.terminal:
            outcome = f" [{node.exit_status or 'end'}"
            outcome += f" reward={node.reward:g}]" if node.reward is not None else "]"
        est = f" est={node.estimate:.2f}" if node.estimate is not None else ""
        lines.append(
            f"{indent}#{node.id} {action}  P={node.prior:.2f} N={node.visits} Q={node.value:.2f}{est}{outcome}"
        )
        for c in node.children:
            walk(tree.nodes[c], indent + "  ")

    walk(tree.root, "")
    return "\n".join(lines)
