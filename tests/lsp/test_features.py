"""The editor features on analysed documents, in process (the server's own tests
drive them over stdio in test_server.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from grpo_dsl.language.ast import Span
from grpo_dsl.lsp import features
from grpo_dsl.lsp.analysis import analyse
from grpo_dsl.lsp.positions import Lines

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
SUPPORT = PROGRAMS / "support.grpo"


def test_positions_count_utf16_units_and_offsets_characters() -> None:
    text = 'grpo 1\nmodel m { name = "😀é" rpm = 3 }\n'
    lines = Lines(text, PositionCodec(types.PositionEncodingKind.Utf16))
    rpm = text.index("rpm")
    column = rpm - text.index("model") + 1
    span = Span("x", 2, column, 2, column + 3, rpm, rpm + 3)
    assert lines.range(span) == types.Range(types.Position(1, column), types.Position(1, column + 3))
    assert lines.offset(types.Position(1, column)) == rpm
    utf32 = Lines(text, PositionCodec(types.PositionEncodingKind.Utf32))
    assert utf32.range(span).start == types.Position(1, column - 1)
    assert lines.offset(types.Position(5, 0)) == len(text)


def test_a_broken_document_still_completes_names_from_its_imports(tmp_path: Path) -> None:
    text = SUPPORT.read_text(encoding="utf-8").replace("  model       = local\n", "  model       = \n  name \"x\"\n")
    analysis = analyse(str(SUPPORT), text, {})
    assert [d.code for d in analysis.diagnostics] == ["E0001"]
    at = text.index("  model       = \n") + len("  model       = ")
    assert {item.label for item in features.completions(analysis, at)} == {"local", "deepseek"}
    assert features.formatted(analysis) is None
    assert features.code_lenses(analysis) == []


def test_hover_in_a_nested_block_and_on_a_reward_name() -> None:
    text = (PROGRAMS / "common.grpo").read_text(encoding="utf-8")
    analysis = analyse(str(PROGRAMS / "common.grpo"), text, {})
    found = features.hover(analysis, text.index("input = 0.28"))
    assert found is not None
    assert found[0] == "**`input`** (model · price): a non-negative number, default `0.0`\n\nUSD per million prompt tokens"
    support = SUPPORT.read_text(encoding="utf-8")
    found = features.hover(analyse(str(SUPPORT), support, {}), support.index("= right_team") + 3)
    assert found is not None
    assert found[0].startswith("```grpo\nreward right_team = exact(lower(strip(output)), team)\n```")


def test_references_skip_words_that_are_not_references(tmp_path: Path) -> None:
    path = tmp_path / "p.grpo"
    text = 'grpo 1\nmodel system { name = "x" }\ntask t { model = system  prompt = "p"  experiences = system }\n'
    path.write_text(text)
    analysis = analyse(str(path), text, {})
    found = features.references(analysis, text.index("system {"), [], include_declaration=False)
    assert [(span.line, span.column) for span in found] == [(3, 18)]


def test_without_pygls_grpo_lsp_says_which_extra_to_install() -> None:
    hide_pygls = "import sys; sys.modules['pygls'] = None; from grpo_dsl.cli import main; sys.exit(main(['lsp']))"
    result = subprocess.run([sys.executable, "-c", hide_pygls], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr == "grpo: error: `grpo lsp` needs the lsp extra (pygls is missing): pip install 'grpo-dsl[lsp]'\n"


def test_a_task_s_tools_complete_with_python_and_the_declared_tools_and_are_references() -> None:
    agent = PROGRAMS / "agent.grpo"
    text = agent.read_text(encoding="utf-8")
    analysis = analyse(str(agent), text, {})
    at = text.index("tools      = [") + len("tools      = [")
    assert {item.label for item in features.completions(analysis, at)} == {"python", "weekday"}
    found = features.references(analysis, text.index("tool weekday") + len("tool "), [], include_declaration=False)
    assert [span.line for span in found] == [text[: text.index("[weekday]")].count("\n") + 1]
