"""Every prompt grpo-dsl sends, composed in one place.

It owns the one placement of the experience library in a task's messages (`messages`:
the same in training, evaluation and emitted modules, rendered by `chat`, which
imports only jinja2 so that packaged modules carry it), the same messages as
self-contained Jinja for other renderers (`portable`), and the learner's prompts
(`learner`), with their `.j2` templates beside them in `templates/`. It imports only `core`.
"""
