"""Answering questions: the questions of a dataset, one rollout, and the tools it may call.

It owns the questions and their seeded order (`questions`), one rollout with its tool
calls (`answer`) and the code interpreter's sandbox (`sandbox`). It imports the layers
below it: `rewards`, `runs`, `clients`, `plan`, `prompts`, `library`, `language`, `core`.
"""
