"""The run directory and what learning, evaluation and replay share about running.

It owns the run-directory format and its append-only event log (`directory`), live
progress on the terminal (`progress`), the session plumbing (`session`): the
client stack for a plan, usage recounted from events, clean stops; and opt-in
OpenTelemetry spans of a run (`tracing`, with `otel` imported only when a run is
traced). It imports `plan`,
`library`, `clients` and `core`.
"""
