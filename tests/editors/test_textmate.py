"""The TextMate grammar of the editors (editors/vscode/syntaxes/grpo.tmLanguage.json),
tokenised as VS Code does: `vscode-textmate` with the Oniguruma WASM, under node.

The node packages come from editors/package-lock.json, installed with `npm ci` when
they are missing; without node and npm the tests fail and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from grpo_dsl.language.ast import DECLARATION_KINDS
from grpo_dsl.language.builtins import BUILTINS

ROOT = Path(__file__).resolve().parents[2]
EDITORS = ROOT / "editors"
GRAMMAR = EDITORS / "vscode" / "syntaxes" / "grpo.tmLanguage.json"
PROGRAMS = sorted(p for folder in ("programs", "tests") for p in (ROOT / folder).rglob("*.grpo"))


def _command(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not on PATH: the grammar tests need Node.js and npm")
    return found


def tokenise(paths: list[Path]) -> dict[str, Any]:
    """Each file's tokens and whether a region is left open at its end (editors/tokenize.js)."""
    if not (EDITORS / "node_modules" / "vscode-textmate").is_dir():
        installed = subprocess.run(
            [_command("npm"), "ci", "--no-audit", "--no-fund"], cwd=EDITORS, capture_output=True, text=True, check=False
        )
        if installed.returncode != 0:
            pytest.fail(f"`npm ci` in {EDITORS} failed with status {installed.returncode}:\n{installed.stderr[-3000:]}")
    result = subprocess.run(
        [_command("node"), str(EDITORS / "tokenize.js"), str(GRAMMAR), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tokens() -> dict[str, Any]:
    return tokenise(PROGRAMS)


def scopes(tokens: dict[str, Any], path: Path) -> list[tuple[str, str]]:
    """Every non-blank token of a file with its innermost scope."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return [
        (line[start:end], scope)
        for line, found in zip(lines, tokens[str(path)]["lines"])
        for start, end, scope in found
        if line[start:end].strip()
    ]


def test_there_are_programs_to_tokenise() -> None:
    assert len(PROGRAMS) > 40 and ROOT / "programs" / "support.grpo" in PROGRAMS


def test_every_program_is_tokenised_without_an_unmatched_region(tokens: dict[str, Any]) -> None:
    assert set(tokens) == {str(p) for p in PROGRAMS}
    assert [path for path, found in tokens.items() if found["open"]] == []


def test_a_multiline_string_never_closed_is_an_unmatched_region(tmp_path: Path) -> None:
    path = tmp_path / "open.grpo"
    path.write_text('grpo 1\ntask t {\n  prompt = """\n    never closed\n}\n')
    assert tokenise([path])[str(path)]["open"] is True


def test_the_parts_of_a_program_get_their_scopes(tokens: dict[str, Any]) -> None:
    found = scopes(tokens, ROOT / "programs" / "support.grpo")
    expected = [
        ("# Route customer tickets to a team. The prompt does not list the teams; the reward", "comment.line.number-sign.grpo"),
        ("grpo", "keyword.other.header.grpo"),
        ("1", "constant.numeric.version.grpo"),
        ("import", "keyword.control.import.grpo"),
        ("common.grpo", "string.quoted.double.grpo"),
        ("dataset", "storage.type.declaration.grpo"),
        ("tickets", "entity.name.type.grpo"),
        ("source", "variable.other.property.grpo"),
        ('"""', "punctuation.definition.string.begin.grpo"),
        ("{{", "punctuation.section.embedded.begin.jinja.grpo"),
        (" ticket ", "variable.other.template.grpo"),
        ("0.9", "constant.numeric.grpo"),
        ("exact", "support.function.builtin.grpo"),
        ("output", "variable.other.grpo"),
        ("pass@4", "constant.other.metric.grpo"),
    ]
    for pair in expected:
        assert pair in found
    assert ("Ticket: {{ ticket }}", "string.quoted.triple.grpo") not in found


def test_the_grammar_knows_the_compilers_declarations_and_builtins() -> None:
    repository = json.loads(GRAMMAR.read_text(encoding="utf-8"))["repository"]
    kinds = re.search(r"\((\w+(?:\|\w+)*)\)", repository["declaration"]["match"])
    assert kinds is not None and kinds[1].split("|") == list(DECLARATION_KINDS)
    calls = [p["match"] for p in repository["expression"]["patterns"] if "support.function.builtin" in json.dumps(p)]
    (builtins,) = calls
    names = re.search(r"\((\w+(?:\|\w+)*)\)", builtins)
    assert names is not None and names[1].split("|") == list(BUILTINS)
