"""`grpo check`, `grpo fmt` and `grpo lsp`: the verbs that read programs and call no model.

They import the language layer only, never the runtime.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grpo_dsl.cli.console import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, Console, UsageError, program_files
from grpo_dsl.core.files import atomic_write_text
from grpo_dsl.language.checks import check_path
from grpo_dsl.language.diagnostics import Diagnostic, ProgramError
from grpo_dsl.language.fmt import format_program
from grpo_dsl.language.parser import parse, parse_file

__all__ = ["check", "fmt", "lsp"]

STDIN = "-"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(files: int, diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    return f"checked {_plural(files, 'file')}: {_plural(errors, 'error')}, {_plural(len(diagnostics) - errors, 'warning')}"


def _diagnose(path: str) -> tuple[tuple[Diagnostic, ...], dict[str, str]]:
    try:
        result = check_path(path)
    except ProgramError as error:
        return error.diagnostics, error.sources
    return tuple(result.diagnostics), dict(result.sources)


def check(args: argparse.Namespace, console: Console) -> int:
    """`grpo check PATH...`: parse and check each program (a folder: every `.grpo` file
    under it), print every diagnostic; with `--format json`, a JSON array of them."""
    files = program_files(args.files)
    diagnostics: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in files:
        console.detail(f"checking {path}")
        found, read = _diagnose(path)
        diagnostics.extend(found)
        sources.update(read)
    if console.json:
        console.document("check", [d.to_json() for d in diagnostics])
    else:
        console.diagnostics(diagnostics, sources, sys.stdout)
        console.info(_summary(len(files), diagnostics))
    return EXIT_PROBLEMS if any(d.severity == "error" for d in diagnostics) else EXIT_OK


def _read(name: str) -> tuple[str, str]:
    """The source of `name` (standard input for `-`) and its canonical layout; raises
    `ProgramError` when it cannot be read or does not parse."""
    program = parse(sys.stdin.read(), "<stdin>") if name == STDIN else parse_file(name)
    return program.source, format_program(program)


def _unified_diff(name: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"{name} (before)", f"{name} (formatted)"))


def fmt(args: argparse.Namespace, console: Console) -> int:
    """`grpo fmt PATH... [--check] [--diff]`: rewrite each program in the canonical layout;
    `-` reads standard input and writes the formatted program to standard output."""
    if STDIN in args.files and args.files != [STDIN]:
        raise UsageError("- (standard input) cannot be mixed with files")
    names = [STDIN] if args.files == [STDIN] else program_files(args.files)
    status, reports = EXIT_OK, []
    for name in names:
        try:
            before, after = _read(name)
        except ProgramError as error:
            console.diagnostics(error.diagnostics, error.sources, sys.stdout if not console.json else sys.stderr)
            reports.append({"path": name, "changed": False, "written": False, "error": True})
            status = EXIT_PROBLEMS
            continue
        changed = after != before
        written = changed and not (args.check or args.diff) and name != STDIN
        report: dict[str, Any] = {"path": name, "changed": changed, "written": written, "error": False}
        if args.diff:
            report["diff"] = _unified_diff(name, before, after)
        if name == STDIN:
            report["formatted"] = after
        reports.append(report)
        if changed and args.check:
            status = EXIT_PROBLEMS
        if written:
            atomic_write_text(Path(name), after)
        if not console.json:
            _print_fmt(console, report, args.check)
    if console.json:
        console.document("fmt", {"files": reports})
    return status


def _print_fmt(console: Console, report: dict[str, Any], checking: bool) -> None:
    if "diff" in report:
        sys.stdout.write(report["diff"])
    elif "formatted" in report and not checking:
        sys.stdout.write(report["formatted"])
    if not report["changed"]:
        console.detail(f"unchanged {report['path']}")
    elif report["written"]:
        console.info(f"reformatted {report['path']}")
    elif checking:
        print(f"would reformat {report['path']}")


def lsp(args: argparse.Namespace, console: Console) -> int:
    """`grpo lsp`: the language server, over standard input and output."""
    try:  # pygls comes with the optional `lsp` extra
        from grpo_dsl.lsp import serve
    except ModuleNotFoundError as missing:
        package = (missing.name or "pygls").partition(".")[0]
        print(f"grpo: error: `grpo lsp` needs the lsp extra ({package} is missing): pip install 'grpo-dsl[lsp]'", file=sys.stderr)
        return EXIT_USAGE
    serve()
    return EXIT_OK
