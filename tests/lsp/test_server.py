"""`grpo lsp` end to end: a real LSP client (pytest-lsp) talks to the server over stdio.

The server is started as `python -m grpo_dsl.cli lsp --stdio` with `programs/` as the
workspace folder; documents are opened with their text from `programs/` (and edited
in the client only: nothing on disk changes).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from grpo_dsl.language.attributes import lookup
from grpo_dsl.language.builtins import BUILTINS
from grpo_dsl.plan import load_plan

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
SUPPORT = PROGRAMS / "support.grpo"
COMMON = PROGRAMS / "common.grpo"
PUBLISH = types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "grpo_dsl.cli", "lsp", "--stdio"]))
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    folder = types.WorkspaceFolder(PROGRAMS.as_uri(), "programs")
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=PROGRAMS.as_uri(), workspace_folders=[folder]
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


async def published(client: LanguageClient, uri: str, version: int, send: object = None) -> Sequence[types.Diagnostic]:
    """The diagnostics the server publishes for `uri` at `version`, after `send()`."""
    while True:
        waiting = client.protocol.wait_for_notification_async(PUBLISH)
        if callable(send):
            send()
            send = None
        params = await asyncio.wait_for(waiting, timeout=30)
        if params.uri == uri and params.version == version:
            return params.diagnostics


async def open_document(client: LanguageClient, path: Path, text: str | None = None) -> tuple[str, str]:
    """Open `path` (with `text`, or its content) and wait for its first diagnostics."""
    uri, content = path.as_uri(), path.read_text(encoding="utf-8") if text is None else text
    item = types.TextDocumentItem(uri=uri, language_id="grpo", version=1, text=content)
    await published(client, uri, 1, lambda: client.text_document_did_open(types.DidOpenTextDocumentParams(item)))
    return uri, content


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    event = types.TextDocumentContentChangeWholeDocument(text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[event])
    )


def position_of(text: str, needle: str, *, after: int = 0) -> types.Position:
    """The position of the first `needle` in `text` (moved `after` characters in)."""
    offset = text.index(needle) + after
    line = text.count("\n", 0, offset)
    return types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


@pytest.mark.asyncio
async def test_diagnostics_appear_and_clear_as_the_document_is_edited(client: LanguageClient) -> None:
    uri, text = await open_document(client, SUPPORT)
    assert list(client.diagnostics[uri]) == []

    broken = (
        text.replace("  group_size = 4", "  group_size 4")
        .replace("  samples = 4", "  samples = [4 4]")
        .replace("emit routing_prompts", "emitt routing_prompts")
    )
    diagnostics = await published(client, uri, 2, lambda: change(client, uri, 2, broken))
    assert [(d.code, d.range.start.line, d.severity) for d in diagnostics] == [
        ("E0001", position_of(broken, "group_size 4").line, types.DiagnosticSeverity.Error),
        ("E0001", position_of(broken, "[4 4]").line, types.DiagnosticSeverity.Error),
        ("E0001", position_of(broken, "emitt").line, types.DiagnosticSeverity.Error),
    ]
    assert diagnostics[0].message == "expected `=` or `{` after the attribute name"
    assert diagnostics[2].message.endswith("did you mean `emit`?")
    assert diagnostics[1].range.start == position_of(broken, "[4 4]", after=3)

    misspelt = text.replace("  model       = local", "  model       = locl")
    diagnostics = await published(client, uri, 3, lambda: change(client, uri, 3, misspelt))
    assert [(d.code, d.message) for d in diagnostics] == [
        ("E0203", "unknown model `locl`\ndid you mean `local`?")
    ]

    assert list(await published(client, uri, 4, lambda: change(client, uri, 4, text))) == []


@pytest.mark.asyncio
async def test_a_problem_in_an_imported_file_is_shown_at_the_import(client: LanguageClient) -> None:
    common_uri, common = await open_document(client, COMMON)
    uri, _ = await open_document(client, SUPPORT)
    broken = common.replace("  capacity      = 8", "  capacity      8")
    await published(client, common_uri, 2, lambda: change(client, common_uri, 2, broken))
    diagnostics = await published(client, uri, 1)
    (summary,) = diagnostics
    assert summary.code == "E0001"
    assert summary.message.startswith("`common.grpo` has 1 error, first at line 20: expected `=` or `{`")
    assert summary.range.start == position_of(SUPPORT.read_text(), '"common.grpo"')


@pytest.mark.asyncio
async def test_hover_shows_the_attribute_table_builtins_and_declarations(client: LanguageClient) -> None:
    uri, text = await open_document(client, SUPPORT)
    document = types.TextDocumentIdentifier(uri)

    hover = await client.text_document_hover_async(types.HoverParams(document, position_of(text, "group_size")))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    spec = lookup("learn", "group_size")
    assert spec is not None
    assert hover.contents.value == f"**`group_size`** (learn): {spec.describe()}, required\n\n{spec.doc}"
    assert hover.range == types.Range(position_of(text, "group_size"), position_of(text, "group_size", after=10))

    hover = await client.text_document_hover_async(types.HoverParams(document, position_of(text, "exact(", after=2)))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.value == f"```grpo\nexact(a, b)\n```\n\n{BUILTINS['exact'].doc}"

    hover = await client.text_document_hover_async(types.HoverParams(document, position_of(text, "= local", after=3)))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert 'model local {\n  name = "qwen2.5-coder-0.5b-instruct"\n  concurrency = 1\n}' in hover.contents.value
    assert f"declared in `{COMMON}` line 5" in hover.contents.value


@pytest.mark.asyncio
async def test_completion_offers_what_fits_the_place(client: LanguageClient) -> None:
    uri, text = await open_document(client, SUPPORT)
    document = types.TextDocumentIdentifier(uri)

    async def labels(edited: str, at: types.Position, version: int) -> set[str]:
        change(client, uri, version, edited)
        result = await client.text_document_completion_async(types.CompletionParams(document, at))
        assert isinstance(result, types.CompletionList)
        return {item.label for item in result.items}

    in_learn = text.replace("  validate   = tickets_heldout\n", "  validate   = tickets_heldout\n  ba\n")
    found = await labels(in_learn, position_of(in_learn, "  ba\n", after=4), 2)
    assert {"batch_size", "budget", "seed", "init", "summarize"} <= found and "prompt" not in found

    in_value = text.replace("  data       = tickets\n", "  data       = \n")
    assert await labels(in_value, position_of(in_value, "  data       = \n", after=15), 3) == {"tickets", "tickets_heldout"}

    in_reward = text.replace("reward right_team = exact(", "reward right_team = ex")
    found = await labels(in_reward, position_of(in_reward, "= ex", after=4), 4)
    assert {"exact(a, b)", "numeric_equal(a, b, tol = 1e-06)", "output", "team", "ticket"} <= found

    in_template = text.replace("Ticket: {{ ticket }}", "Ticket: {{ ti")
    assert await labels(in_template, position_of(in_template, "{{ ti", after=5), 5) == {"ticket", "team", "id", "experiences"}

    in_enum = text.replace("  formats = [json, jinja, markdown]", "  formats = [json, ")
    assert await labels(in_enum, position_of(in_enum, "[json, ", after=7), 6) == {"json", "jinja", "markdown", "prompty"}


@pytest.mark.asyncio
async def test_definition_and_references_cross_the_import(client: LanguageClient) -> None:
    uri, text = await open_document(client, SUPPORT)
    common = COMMON.read_text(encoding="utf-8")

    found = await client.text_document_definition_async(
        types.DefinitionParams(types.TextDocumentIdentifier(uri), position_of(text, "= small_library", after=4))
    )
    assert found == types.Location(
        COMMON.as_uri(), types.Range(position_of(common, "small_library"), position_of(common, "small_library", after=13))
    )

    found = await client.text_document_definition_async(
        types.DefinitionParams(types.TextDocumentIdentifier(uri), position_of(text, '"common.grpo"', after=2))
    )
    assert isinstance(found, types.Location) and found.uri == COMMON.as_uri()

    common_uri, _ = await open_document(client, COMMON)
    context = types.ReferenceContext(include_declaration=True)
    found = await client.text_document_references_async(
        types.ReferenceParams(text_document=types.TextDocumentIdentifier(common_uri), position=position_of(common, "local {"), context=context)
    )
    assert found is not None
    places = {(Path(location.uri.removeprefix("file://")).name, location.range.start.line) for location in found}
    # The programs that import common.grpo and use its `local` (others declare their own).
    texts = {p.name: p.read_text(encoding="utf-8") for p in PROGRAMS.glob("*.grpo")}
    users = [name for name, t in texts.items() if 'import "common.grpo"' in t and "= local\n" in t]
    assert ("common.grpo", position_of(common, "local {").line) in places
    assert ("support.grpo", position_of(text, "= local").line) in places
    assert {name for name, _ in places} == {"common.grpo", *users}


@pytest.mark.asyncio
async def test_symbols_formatting_and_code_lenses(client: LanguageClient) -> None:
    uri, text = await open_document(client, SUPPORT)
    document = types.TextDocumentIdentifier(uri)

    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(document))
    assert symbols is not None
    assert [s.name for s in symbols] == [
        "tickets", "tickets_heldout", "route", "right_team", "routing_lessons", "routing", "routing_prompts",
    ]

    messy = text.replace("  group_size = 4\n", "group_size=4\n").replace("  samples = 4\n", "        samples    = 4 # four\n")
    change(client, uri, 2, messy)
    options = types.FormattingOptions(tab_size=2, insert_spaces=True)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(document, options))
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == text.replace("  samples = 4\n", "  samples = 4  # four\n")

    change(client, uri, 3, text)
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(document))
    assert lenses is not None
    plan = load_plan(SUPPORT)
    learn, evaluate = plan.estimate("learn", "routing_lessons"), plan.estimate("evaluate", "routing")
    titles = {(lens.range.start.line, lens.command.title) for lens in lenses if lens.command is not None}
    assert titles == {
        (position_of(text, "learn routing_lessons").line,
         f"estimate: at most {learn.calls:,} calls, {learn.prompt_tokens + learn.completion_tokens:,} tokens, $0.00"),
        (position_of(text, "learn routing_lessons").line, "▶ run routing_lessons"),
        (position_of(text, "evaluate routing").line,
         f"estimate: {evaluate.calls:,} calls, {evaluate.prompt_tokens + evaluate.completion_tokens:,} tokens, $0.00"),
        (position_of(text, "evaluate routing").line, "▶ evaluate routing"),
    }
