"""Benchmark runs: datasets, workspaces, the batch runner, the evaluation harness and its report."""
