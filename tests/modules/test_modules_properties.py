"""Properties of module versions over random histories of a library.

Each example grows a library with `apply` over random operations (the strategies of
`grpo_dsl.testing`), emits it after every step, and checks: version numbers only
grow and follow the rule of docs/prompt-modules.md; emitting an unchanged library
writes nothing; the diff of two versions applied to the first gives the second;
every experience and demo of every version is traced by blame to the step that added it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_dsl import load_module
from grpo_dsl.library import ApplyContext, Library, apply
from grpo_dsl.modules import (
    ModelRef,
    ModuleSpec,
    blame,
    diff_experiences,
    emit_module,
    module_log,
)
from grpo_dsl.modules.versioning import version_key
from grpo_dsl.testing import operation_lists, policies

SPEC = ModuleSpec("lessons", None, "Solve {{ question }}", "user", ModelRef("m", "model-x"), formats=("json",))


@st.composite
def histories(draw: st.DrawFn) -> list[Library]:
    """The libraries after each of 1 to 5 steps of random operations under a random policy."""
    policy = draw(policies(max_capacity=5))
    library = Library.empty()
    result = []
    for step in range(1, draw(st.integers(1, 5)) + 1):
        operations = draw(operation_lists(library, policy, max_size=4))
        library, _ = apply(library, operations, policy, ApplyContext(step, (f"{step}:q{step % 3}",)))
        result.append(library)
    return result


def _expected(previous: str, before: Library, after: Library) -> str:
    major, minor, patch = version_key(previous)
    def ids(library: Library) -> set[str]:
        return {entry["id"] for entry in library.listed()}

    if ids(after) - ids(before):
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


@settings(max_examples=30, deadline=None)
@given(histories())
def test_versions_grow_unchanged_emits_are_no_ops_diffs_apply_and_blame_traces(history: list[Library]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "module"
        emitted: list[tuple[str, Library]] = []
        for library in history:
            index_before = (path / "index.json").read_bytes() if path.exists() else None
            result = emit_module(library, SPEC, path)
            if emitted and emitted[-1][1].content_hash() == library.content_hash():
                assert not result.created and result.version == emitted[-1][0]
                assert (path / "index.json").read_bytes() == index_before
                continue
            assert result.created
            if emitted:
                assert version_key(result.version) > version_key(emitted[-1][0])
                assert result.version == _expected(emitted[-1][0], emitted[-1][1], library)
            emitted.append((result.version, library))
            again = emit_module(library, SPEC, path)
            assert (again.version, again.created) == (result.version, False)

        assert [e.version for e in module_log(path)] == [v for v, _ in emitted]
        modules = [load_module(path, version) for version, _ in emitted]
        for module, (_, library) in zip(modules, emitted):
            assert module.library.prompt_entries() == library.prompt_entries()
            assert module.library.demo_entries() == library.demo_entries()
            items = [(e.id, e.text) for e in module.experiences] + [(d.id, d.example.answer) for d in module.demos]
            for item, text in items:
                events = blame(module, item).events
                assert events[0].entry.op == "add" and events[0].entry.step >= 1
                assert events[-1].text == text
        for before, after in zip(modules, modules[1:]):
            entries_before, entries_after = before.library.listed(), after.library.listed()
            assert diff_experiences(entries_before, entries_after).apply(entries_before) == entries_after
        first, last = modules[0].library.listed(), modules[-1].library.listed()
        assert diff_experiences(first, last).apply(first) == last
