"""The Training-Free GRPO loop: one step, a whole run with its gate, and replay.

It owns one learning step (`step`: rollouts, rewards, filter, summaries, advantages,
consolidation, apply), a run from start or resume to its end (`run`, with the
validation gate) and counterfactual replay under another update rule (`replay`). It
imports every layer below it, `evaluation` included.
"""
