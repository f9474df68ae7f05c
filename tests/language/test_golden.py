"""Golden programs: each wrong program in tests/data holds its expected diagnostics.

The expectations are the trailing comment block after `EXPECTED`, the output of
`render_text` (no colour) with each line prefixed by `# `. Run with
`GRPO_UPDATE_GOLDEN=1` to rewrite them, then review the diff. Files whose name
starts with `_` are helpers that the golden programs import.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grpo_dsl.language.checks import check_path
from grpo_dsl.language.diagnostics import CODES, render_text
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import parse

DATA = Path(__file__).resolve().parents[1] / "data"
PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
EXPECTED = "# ---- expected diagnostics ----"
GOLDEN = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*.grpo") if not p.name.startswith("_"))
UPDATE = os.environ.get("GRPO_UPDATE_GOLDEN") == "1"


def split(text: str) -> tuple[str, str | None]:
    """The program and its expectation block (None when the file has none)."""
    program, marker, expected = text.partition("\n" + EXPECTED + "\n")
    if not marker:
        return text, None
    lines = [line[2:] if line.startswith("# ") else line.removeprefix("#") for line in expected.splitlines()]
    return program + "\n", "\n".join(lines)


def as_comments(rendered: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in rendered.splitlines()) + "\n"


def render(relative: str) -> str:
    result = check_path(relative)
    return "\n".join(line.rstrip() for line in render_text(result.diagnostics, result.sources).splitlines())


@pytest.fixture(autouse=True)
def _in_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)


@pytest.mark.parametrize("relative", GOLDEN)
def test_golden(relative: str) -> None:
    path = DATA / relative
    program, expected = split(path.read_text(encoding="utf-8"))
    actual = render(relative)
    if UPDATE:
        path.write_text(program + EXPECTED + "\n" + as_comments(actual), encoding="utf-8")
        return
    assert expected is not None, f"{relative} has no `{EXPECTED}` block: run with GRPO_UPDATE_GOLDEN=1"
    assert actual, f"{relative} is a golden program but has no diagnostics"
    assert actual == expected


def test_every_code_has_a_golden_program() -> None:
    found: set[str] = set()
    for relative in GOLDEN:
        result = check_path(relative)
        found |= {d.code for d in result.diagnostics}
    assert sorted(set(CODES) - found) == []
    assert sorted(found - set(CODES)) == []


@pytest.mark.parametrize("program", sorted(p.name for p in PROGRAMS.glob("*.grpo")))
def test_example_programs_are_clean(program: str) -> None:
    result = check_path(str(PROGRAMS / program))
    assert render_text(result.diagnostics, result.sources) == ""
    assert result.ok and result.workspace is not None


@pytest.mark.parametrize("program", sorted(p.name for p in PROGRAMS.glob("*.grpo")))
def test_example_programs_are_in_canonical_form(program: str) -> None:
    text = (PROGRAMS / program).read_text(encoding="utf-8")
    assert format_program(parse(text, program)) == text


def test_there_are_enough_example_programs() -> None:
    assert {"math.grpo", "arithmetic.grpo"} <= {p.name for p in PROGRAMS.glob("*.grpo")}
    assert any('import "' in p.read_text(encoding="utf-8") for p in PROGRAMS.glob("*.grpo"))
