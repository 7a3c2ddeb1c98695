"""Agents: the default linear loop and the interactive one built on it."""
