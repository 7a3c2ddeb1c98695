"""Tree search at run time: the ThoughtTree, PUCT, best-of-n, judges and value inference.

It drives the agent only through `DefaultAgent`'s public step/state API.
"""
