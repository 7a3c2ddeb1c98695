"""ThoughtTree arithmetic: PUCT selection with priors, backup, exhaustion, files."""

from __future__ import annotations

import math

import pytest

from wren.search.tree import ThoughtTree, TreeError, render_tree


def _tree_with_children(priors):
    tree = ThoughtTree([{"role": "system", "content": "s"}])
    tree.root.expanded = True
    kids = [tree.add_child(tree.root, action=f"cmd{i}", prior=p) for i, p in enumerate(priors)]
    return tree, kids


def test_puct_prefers_the_higher_prior_among_unvisited_children():
    tree, kids = _tree_with_children([0.2, 0.7, 0.1])
    assert tree.select(c_puct=1.0) is kids[1]


def test_backup_adds_the_return_to_every_node_on_the_path():
    tree, kids = _tree_with_children([0.5, 0.5])
    grand = tree.add_child(kids[0], action="deeper")
    tree.backup(grand, 1.0)
    tree.backup(kids[1], 0.0)
    assert (tree.root.visits, tree.root.value) == (2, 0.5)
    assert (kids[0].visits, kids[0].value) == (1, 1.0)
    assert (grand.visits, grand.value) == (1, 1.0)
    assert (kids[1].visits, kids[1].value) == (1, 0.0)


def test_selection_follows_value_once_visits_accumulate_and_explores_with_large_c():
    tree, (good, bad) = _tree_with_children([0.5, 0.5])
    for _ in range(3):
        tree.backup(good, 1.0)
    tree.backup(bad, 0.0)
    # Exact PUCT numbers: Q + c * P * sqrt(N) / (1 + n).
    assert tree.puct(tree.root, good, 1.0) == pytest.approx(1.0 + 0.5 * math.sqrt(4) / 4)
    assert tree.puct(tree.root, bad, 1.0) == pytest.approx(0.0 + 0.5 * math.sqrt(4) / 2)
    assert tree.select(c_puct=1.0) is good
    # With a large exploration weight the less-visited child wins.
    assert tree.select(c_puct=10.0) is bad


def test_selection_descends_to_an_unexpanded_leaf_and_skips_finished_subtrees():
    tree, (a, b) = _tree_with_children([0.9, 0.1])
    a.expanded = True
    done = tree.add_child(a, action="submit", terminal=True, reward=0.0)
    assert tree.exhausted(a) and not tree.exhausted(tree.root)
    assert tree.select(c_puct=1.0) is b  # a's subtree has nothing left to explore
    b.terminal = True
    assert tree.exhausted(tree.root)
    assert done in tree.terminals()


def test_best_terminal_prefers_reward_then_visits():
    tree, (a, b, c) = _tree_with_children([0.3, 0.3, 0.4])
    for n, r in ((a, 0.0), (b, 1.0), (c, 1.0)):
        n.terminal, n.exit_status, n.reward = True, "Submitted", r
    tree.backup(c, 1.0)
    assert tree.best_terminal() is c


def test_tree_file_round_trip_and_render(tmp_path):
    tree, (a, _) = _tree_with_children([0.6, 0.4])
    a.terminal, a.exit_status, a.reward = True, "Submitted", 1.0
    tree.backup(a, 1.0)
    path = tree.save(tmp_path, strategy="mcts", budget=4, chosen=a.id)
    loaded, meta = ThoughtTree.load(tmp_path)
    assert path.name == "tree.json" and meta["strategy"] == "mcts"
    assert [n.__dict__ for n in loaded.nodes] == [n.__dict__ for n in tree.nodes]
    text = render_tree(loaded, meta)
    assert "strategy=mcts" in text and "#1 cmd0  P=0.60 N=1 Q=1.00 [Submitted reward=1]" in text


def test_a_file_that_is_not_a_tree_is_a_clear_error(tmp_path):
    (tmp_path / "tree.json").write_text("{}")
    with pytest.raises(TreeError, match="is not a Wren search tree"):
        ThoughtTree.load(tmp_path)
