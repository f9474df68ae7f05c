"""A crash at any point of an emit leaves every published version intact and loadable.

An emit runs in a forked child process that SIGKILLs itself just before its N-th
file system call (open, fsync, replace, rename), for every N the emit makes
(`crash.run_killed`).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from support.crash import run_killed

from grpo_dsl import load_module
from grpo_dsl.library import ApplyContext, Library, Operation, PolicySpec, apply
from grpo_dsl.modules import ModelRef, ModuleSpec, emit_module, module_log

SPEC = ModuleSpec("dates", "You write dates.", "Day {{ day }}?", "system", ModelRef("world", "world-model"), formats=("json", "jinja", "markdown"))
FIELDS = {"day": 4}
FIRST, _ = apply(Library.empty(), [Operation.add("Use YYYY-MM-DD.")], PolicySpec(), ApplyContext(1, ("1:q1",)))
SECOND, _ = apply(FIRST, [Operation.add("Pad with zeros."), Operation.modify("E1", "Use ISO dates.")], PolicySpec(), ApplyContext(2, ("2:q2",)))


def _emit_in_child(module: Path, kill_at: int) -> tuple[int, int]:
    return run_killed(lambda: emit_module(SECOND, SPEC, module), kill_at)


def test_a_killed_emit_leaves_the_published_versions_intact(tmp_path: Path) -> None:
    base = tmp_path / "base"
    emit_module(FIRST, SPEC, base)
    first_messages = load_module(base).render(**FIELDS)
    counting = tmp_path / "counting"
    shutil.copytree(base, counting)
    status, total = _emit_in_child(counting, kill_at=0)
    assert os.waitstatus_to_exitcode(status) == 0
    second_messages = load_module(counting).render(**FIELDS)
    assert second_messages != first_messages and total > 10

    published_after_kill = set()
    for kill_at in range(1, total + 1):
        module = tmp_path / f"killed-{kill_at}"
        shutil.copytree(base, module)
        status, _ = _emit_in_child(module, kill_at)
        assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL, kill_at
        versions = [e.version for e in module_log(module)]
        assert versions in (["1.0.0"], ["1.0.0", "1.1.0"]), (kill_at, versions)
        published_after_kill.add(len(versions))
        assert load_module(module, "1.0.0").render(**FIELDS) == first_messages
        assert load_module(module).render(**FIELDS) == (second_messages if len(versions) == 2 else first_messages)

        again = emit_module(SECOND, SPEC, module)
        assert again.version == "1.1.0" and again.created == (len(versions) == 1)
        assert load_module(module).render(**FIELDS) == second_messages
        assert sorted(os.listdir(module)) == [".lock", "1.0.0", "1.1.0", "index.json"], kill_at
    assert published_after_kill == {1, 2}
