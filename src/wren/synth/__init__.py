"""Task synthesis: break working code on purpose and keep the breakages the repository's tests catch.

`wren synth REPO_DIR -o tasks.jsonl` is the entry point; `wren.synth.pipeline.synthesize` the Python one.
"""
