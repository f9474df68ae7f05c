"""Every prompt grpo-dsl sends, composed in one place.

It owns the one placement of the experience library in a task's messages (`messages`:
the same in training, evaluation and emitted modules) and the learner's prompts
(`learner`), with their `.j2` templates beside them in `templates/`. It imports only `core`.
"""
