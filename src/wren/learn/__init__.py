"""Learning from runs: training data (`data`), training (`train`), the probe and the closed loop.

Heavy dependencies (torch, transformers, trl, peft) are imported inside the functions that train,
so reading runs and exporting data need only the core install.
"""
