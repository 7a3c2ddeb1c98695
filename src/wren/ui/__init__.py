"""Interfaces for people: the terminal REPL, the Textual TUI of `wren run -v`, and the trajectory inspector."""
