"""Scoring answers: the reward expressions of a plan, Python rewards and judge rewards.

It owns `RewardScorer` (`scorer`); the judge's prompt is in `prompts/templates/judge.j2`. It imports the
layers below it: `runs`, `clients`, `plan`, `prompts`, `library`, `language` and `core`.
"""
