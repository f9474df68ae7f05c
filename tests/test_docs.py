"""The language reference and the diagnostics page agree with the code.

- every ```grpo block of docs/language.md parses;
- the attribute and built-in tables of docs/language.md are generated from
  `grpo_dsl.language.attributes` and `grpo_dsl.language.builtins` (`GRPO_UPDATE_GOLDEN=1` rewrites them);
- docs/errors.md documents every code of `CODES`, and each example is the real output
  of the golden program it names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from grpo_dsl.language.attributes import SPECS, AttributeSpec
from grpo_dsl.language.builtins import BUILTINS
from grpo_dsl.language.checks import check_path
from grpo_dsl.language.diagnostics import CODES, render_text
from grpo_dsl.language.parser import parse

DOCS = Path(__file__).parent.parent / "docs"
DATA = Path(__file__).parent / "data"
LANGUAGE = DOCS / "language.md"
ERRORS = DOCS / "errors.md"
UPDATE = os.environ.get("GRPO_UPDATE_GOLDEN") == "1"

_BLOCK = re.compile(r"^```grpo\n(.*?)^```", re.M | re.S)
_KIND_TITLES = {
    "model": "model",
    "model.price": "model · price { }",
    "dataset": "dataset",
    "task": "task",
    "tool": "tool",
    "tool.mcp": "tool · mcp { }",
    "reward": "reward (judge form)",
    "policy": "policy",
    "learn": "learn",
    "learn.budget": "learn · budget { }",
    "evaluate": "evaluate",
    "emit": "emit",
}


def _default(spec: AttributeSpec) -> str:
    if spec.required:
        return "required"
    value = spec.default
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, list):
        return "`[" + ", ".join(value) + "]`"
    if isinstance(value, dict):
        return "`{ " + "  ".join(f"{k} = {'absent' if v is None else v}" for k, v in value.items()) + " }`" if value else "`{ }`"
    if isinstance(value, str) and spec.kind == "enum":
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def attribute_tables() -> str:
    """The attribute tables, one per declaration kind and nested block."""
    out: list[str] = []
    for key, title in _KIND_TITLES.items():
        outer, _, inner = key.partition(".")
        specs = SPECS[outer] if not inner else next(s.block for s in SPECS[outer] if s.name == inner)
        out += [f"#### {title}", "", "| attribute | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| `{s.name}` | {s.describe()} | {_default(s)} | {s.doc} |" for s in specs]
        out.append("")
    return "\n".join(out)


def builtin_table() -> str:
    """The built-in functions of reward expressions."""
    rows = ["| function | arguments | meaning |", "|---|---|---|"]
    for builtin in BUILTINS.values():
        if builtin.max_args is None:
            arity = f"{builtin.min_args} or more"
        elif builtin.min_args == builtin.max_args:
            arity = str(builtin.min_args)
        else:
            arity = f"{builtin.min_args} to {builtin.max_args}"
        rows.append(f"| `{builtin.name}` | {arity} | {builtin.doc} |")
    return "\n".join(rows) + "\n"


def _section(text: str, name: str) -> tuple[int, int]:
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    start = text.index(begin) + len(begin)
    return start, text.index(end, start)


@pytest.mark.parametrize(("name", "generate"), [("attributes", attribute_tables), ("builtins", builtin_table)])
def test_generated_tables_are_current(name: str, generate: object) -> None:
    assert callable(generate)
    text = LANGUAGE.read_text(encoding="utf-8")
    start, end = _section(text, name)
    expected = generate()
    if UPDATE:
        LANGUAGE.write_text(text[:start] + expected + text[end:], encoding="utf-8")
        return
    assert text[start:end] == expected


def test_every_attribute_is_documented() -> None:
    text = LANGUAGE.read_text(encoding="utf-8")
    for kind, specs in SPECS.items():
        for spec in specs:
            assert f"| `{spec.name}` |" in text, f"{kind}.{spec.name}"


_BLOCKS = _BLOCK.findall(LANGUAGE.read_text(encoding="utf-8"))


def test_the_reference_has_examples() -> None:
    assert len(_BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(_BLOCKS)))
def test_every_grpo_block_parses(index: int) -> None:
    program = parse(_BLOCKS[index], f"language.md#{index}")
    assert program.header is not None


# ----------------------------------------------------------------------- errors.md

_SECTIONS = dict(re.findall(r"^## ([EW]\d{4}): .*?\n(.*?)(?=^## |\Z)", ERRORS.read_text(encoding="utf-8"), re.M | re.S))


def test_every_code_is_documented_once_with_its_title() -> None:
    text = ERRORS.read_text(encoding="utf-8")
    headings = re.findall(r"^## ([EW]\d{4}): (.*)$", text, re.M)
    assert [code for code, _ in headings] == list(CODES)
    assert dict(headings) == CODES


@pytest.mark.parametrize("code", list(CODES))
def test_every_code_has_a_fix_and_a_real_example(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    section = _SECTIONS[code]
    assert "**Fix:**" in section
    found = re.search(r"Example \(`tests/data/(.*?)`\):\n\n```text\n(.*?)\n```", section, re.S)
    assert found is not None, f"{code} has no example"
    monkeypatch.chdir(DATA)
    result = check_path(found[1])
    rendered = [render_text([d], result.sources) for d in result.diagnostics if d.code == code]
    assert found[2] in rendered
