"""The run directory and what learning, evaluation and replay share about running.

It owns the run-directory format and its append-only event log (`directory`), live
progress on the terminal (`progress`), and the session plumbing (`session`): the
client stack for a plan, usage recounted from events, clean stops. It imports `plan`,
`library`, `clients` and `core`.
"""
