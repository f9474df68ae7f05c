"""Diagnostics of `grpo lsp` after an edit of a 2,000-line file, against 200 ms.

    .venv/bin/python benchmarks/bench_lsp_diagnostics.py [--lines 2000] [--edits 20]

Starts `grpo lsp` as a subprocess with a pygls client over stdio, opens a valid
program of about `--lines` lines (the program of `bench_parse_check.py`), then
makes `--edits` edits in its middle, sent as an editor sends them (the range
that changed), in turn: a syntax error, its fix, an unknown name (an error of the
checks), its fix. For each it times, on the client, from
sending `didChange` to receiving `publishDiagnostics` for the new version, and
checks that the diagnostics are the expected ones. It prints min, median and max
against the target, and against the ideal measured in this run: the server's
debounce plus `analyse` of the same text in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from bench_parse_check import load_average, program_folder
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from grpo_dsl.language.incremental import Reparser
from grpo_dsl.lsp.analysis import analyse
from grpo_dsl.lsp.server import DEBOUNCE_SECONDS

TARGET_SECONDS = 0.2
KINDS = ("a syntax error", "its fix", "an unknown name", "its fix")
"""The edits of one round (`edits`), in order."""


def edits(text: str) -> list[tuple[str, str, int]]:
    """One round of edits in the middle of `text`: each text with the code and the
    number of errors it must give."""
    middle = text.index("learn l", len(text) // 2)

    def replaced(old: str, new: str) -> str:
        start = text.index(old, middle)
        return text[:start] + new + text[start + len(old) :]

    broken = replaced("  group_size   = 5", "  group_size   5")
    unknown = replaced("  task         = t", "  task         = nonexistent_")
    return [(broken, "E0001", 1), (text, "", 0), (unknown, "E0203", 1), (text, "", 0)]


def incremental(old: str, new: str) -> types.TextDocumentContentChangePartial:
    """The change from `old` to `new` as an editor sends it: the range that differs
    (the texts are ASCII, so characters are UTF-16 units) and its new text."""
    start = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    tail = 0
    while tail < min(len(old), len(new)) - start and old[-1 - tail] == new[-1 - tail]:
        tail += 1

    def position(offset: int) -> types.Position:
        return types.Position(old.count("\n", 0, offset), offset - (old.rfind("\n", 0, offset) + 1))

    span = types.Range(position(start), position(len(old) - tail))
    return types.TextDocumentContentChangePartial(range=span, text=new[start : len(new) - tail])


async def measure(path: Path, text: str, count: int) -> list[float]:
    client = LanguageClient("bench", "1")
    arrived: dict[int, tuple[float, list[types.Diagnostic]]] = {}
    waiting: dict[int, asyncio.Future[None]] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        if params.version is not None:
            arrived[params.version] = (time.perf_counter(), params.diagnostics)
            if params.version in waiting:
                waiting[params.version].set_result(None)

    await client.start_io(sys.executable, "-m", "grpo_dsl.cli", "lsp", "--stdio")
    root = path.parent.as_uri()
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=root))
    client.initialized(types.InitializedParams())
    uri = path.as_uri()
    loop = asyncio.get_running_loop()
    waiting[1] = loop.create_future()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "grpo", 1, text)))
    await asyncio.wait_for(waiting[1], 60)
    latencies = []
    rounds, current = edits(text), text
    for version in range(2, count + 2):
        edited, code, errors = rounds[(version - 2) % len(rounds)]
        waiting[version] = loop.create_future()
        change = incremental(current, edited)
        current = edited
        identifier = types.VersionedTextDocumentIdentifier(version=version, uri=uri)
        sent = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(identifier, [change]))
        await asyncio.wait_for(waiting[version], 60)
        received, diagnostics = arrived[version]
        found = [d.code for d in diagnostics if d.severity == types.DiagnosticSeverity.Error]
        if found != [code] * errors:
            raise SystemExit(f"edit {version}: expected {errors} x {code or 'nothing'}, got {found}")
        latencies.append(received - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return latencies


def ideal(path: Path, text: str, count: int) -> float:
    """The least time the server could take, median over the same edits: its
    debounce and one analysis (with a `Reparser`, as the server parses)."""
    reparser, rounds, times = Reparser(), edits(text), []
    analyse(str(path), text, {}, 1, reparser)
    for version in range(2, count + 2):
        start = time.perf_counter()
        analyse(str(path), rounds[(version - 2) % len(rounds)][0], {}, version, reparser)
        times.append(time.perf_counter() - start)
    return DEBOUNCE_SECONDS + statistics.median(times)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--lines", type=int, default=2_000)
    options.add_argument("--edits", type=int, default=20)
    args = options.parse_args()
    with program_folder(args.lines) as (path, text):
        print(f"program: {text.count(chr(10)) + 1:,} lines, {len(text.encode('utf-8')):,} bytes; {args.edits} edits")
        print(f"target: {TARGET_SECONDS * 1000:.0f} ms from the edit to its diagnostics; debounce {DEBOUNCE_SECONDS * 1000:.0f} ms")
        print(f"load average before: {load_average()}")
        best = ideal(path, text, args.edits)
        latencies = asyncio.run(measure(path, text, args.edits))
        low, median, high = min(latencies), statistics.median(latencies), max(latencies)
        print(f"ideal (debounce + analyse in process, median): {best * 1000:6.1f} ms")
        for what, seconds in (("min", low), ("median", median), ("max", high)):
            print(
                f"edit to diagnostics  {what:<6} {seconds * 1000:6.1f} ms   / target {seconds / TARGET_SECONDS:5.2f}"
                f"   / ideal {seconds / best:5.2f}"
            )
        for index, kind in enumerate(KINDS):
            those = latencies[index :: len(KINDS)]
            print(f"  median after {kind:<16} {statistics.median(those) * 1000:6.1f} ms over {len(those)} edits")
        print(f"load average after:  {load_average()}")
        print(f"CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    main()
