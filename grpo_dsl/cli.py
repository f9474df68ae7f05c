"""The `grpo` command: one subcommand per verb, registered in `SUBCOMMANDS`.

Exit status: 0 clean, 1 problems in a program, 2 wrong usage (including a file
that does not exist). This is the only module that chooses colour or exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import __version__
from .checks import check_path
from .diagnostics import Diagnostic, ProgramError, render_json, render_text
from .fmt import format_program
from .parser import parse_file

__all__ = ["Subcommand", "SUBCOMMANDS", "EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "main", "wants_color"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A `grpo NAME ...` verb: how to declare its arguments and how to run it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def wants_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when `NO_COLOR` is set."""
    return stream.isatty() and "NO_COLOR" not in os.environ


def _usage_error(message: str) -> int:
    print(f"grpo: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _missing_files(paths: Sequence[str]) -> list[str]:
    return [path for path in paths if not Path(path).is_file()]


def _summary(files: int, diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return f"checked {plural(files, 'file')}: {plural(errors, 'error')}, {plural(warnings, 'warning')}"


# ------------------------------------------------------------------------ check


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="a .grpo program")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print diagnostics")


def _diagnose(path: str) -> tuple[tuple[Diagnostic, ...], dict[str, str]]:
    try:
        result = check_path(path)
    except ProgramError as error:
        return error.diagnostics, error.sources
    return tuple(result.diagnostics), dict(result.sources)


def check(args: argparse.Namespace) -> int:
    """`grpo check FILE...`: parse and check each program, print every diagnostic."""
    missing = _missing_files(args.files)
    if missing:
        return _usage_error(f"no such file: {', '.join(missing)}")
    diagnostics: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in args.files:
        found, read = _diagnose(path)
        diagnostics.extend(found)
        sources.update(read)
    if args.format == "json":
        print(render_json(diagnostics))
    else:
        if diagnostics:
            print(render_text(diagnostics, sources, color=wants_color(sys.stdout)))
        print(_summary(len(args.files), diagnostics), file=sys.stderr)
    return EXIT_PROBLEMS if any(d.severity == "error" for d in diagnostics) else EXIT_OK


# -------------------------------------------------------------------------- fmt


def _fmt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="a .grpo program, rewritten in place")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=path.parent, delete=False) as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(out.name, path)


def fmt(args: argparse.Namespace) -> int:
    """`grpo fmt FILE... [--check]`: rewrite each program in the canonical layout."""
    missing = _missing_files(args.files)
    if missing:
        return _usage_error(f"no such file: {', '.join(missing)}")
    status = EXIT_OK
    for name in args.files:
        path = Path(name)
        try:
            program = parse_file(path)
        except ProgramError as error:
            print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stdout)))
            status = EXIT_PROBLEMS
            continue
        formatted = format_program(program)
        if formatted == program.source:
            continue
        if args.check:
            print(f"would reformat {name}")
            status = EXIT_PROBLEMS
        else:
            _write_atomically(path, formatted)
            print(f"reformatted {name}", file=sys.stderr)
    return status


# ------------------------------------------------------------------------ entry

SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("check", "parse and check programs, print every problem", _check_arguments, check),
    Subcommand("fmt", "rewrite programs in the canonical layout", _fmt_arguments, fmt),
)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo", description="Training-Free GRPO, declared in .grpo files.")
    parser.add_argument("--version", action="version", version=f"grpo-dsl {__version__}")
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for subcommand in SUBCOMMANDS:
        verb = verbs.add_parser(subcommand.name, help=subcommand.help, description=subcommand.help)
        subcommand.add_arguments(verb)
        verb.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `grpo` with `argv` (default: the process arguments); return the exit status."""
    try:
        args = _argument_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
