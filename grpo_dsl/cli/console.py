"""What every verb shares: its output format, verbosity and colour, usage errors, and
the JSON documents it prints, each checked against its schema in `cli/schemas/`.

It imports nothing of the runtime, so `grpo check` and `grpo fmt` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from grpo_dsl.core.errors import GrpoError

if TYPE_CHECKING:
    from grpo_dsl.language.diagnostics import Diagnostic

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "Console",
    "UsageError",
    "common_options",
    "program_files",
    "schema_path",
]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SCHEMAS = Path(__file__).resolve().parent / "schemas"
PROGRAM_SUFFIX = ".grpo"


class UsageError(GrpoError):
    """The command line asks for something impossible: exit status 2."""


def common_options() -> argparse.ArgumentParser:
    """The options every verb takes: `--format`, `-q`/`-v` and `--color`."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--format", choices=("text", "json"), default="text", help="the verb's output: for people (default), or one JSON document"
    )
    loudness = options.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the result and errors")
    loudness.add_argument("-v", "--verbose", action="store_true", help="print more detail, and the traceback of an unexpected error")
    options.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour the output (auto: on a terminal, unless NO_COLOR is set)"
    )
    return options


@dataclass(frozen=True, slots=True)
class Console:
    """How one invocation prints: `format` of the verb's own output, `verbosity`
    (-1 quiet, 0 normal, 1 verbose) and the `--color` choice."""

    format: str = "text"
    verbosity: int = 0
    color_choice: str = "auto"

    @classmethod
    def of(cls, args: argparse.Namespace) -> Console:
        """The console the parsed options ask for (verbs without them print plain text)."""
        verbosity = -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", False))
        return cls(getattr(args, "format", "text"), verbosity, getattr(args, "color", "auto"))

    @property
    def json(self) -> bool:
        return self.format == "json"

    def color(self, stream: TextIO) -> bool:
        """Colour `stream`? `always` and `never` decide; `auto` colours a terminal unless `NO_COLOR` is set."""
        if self.color_choice != "auto":
            return self.color_choice == "always"
        return stream.isatty() and not os.environ.get("NO_COLOR")

    def info(self, message: str) -> None:
        """A message about the work (not its result) on standard error; `-q` hides it."""
        if self.verbosity >= 0:
            print(message, file=sys.stderr, flush=True)

    def detail(self, message: str) -> None:
        """A message only `-v` shows, on standard error."""
        if self.verbosity > 0:
            print(message, file=sys.stderr, flush=True)

    def document(self, verb: str, document: Any) -> None:
        """Print the verb's JSON document on standard output, after checking it against
        `cli/schemas/VERB.json` (a document that breaks its schema is a bug, not output)."""
        _validator(verb).validate(document)
        print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))

    def diagnostics(self, diagnostics: Sequence[Diagnostic], sources: dict[str, str], stream: TextIO | None = None) -> None:
        """Print diagnostics in the chosen format, on `stream` (default: standard error):
        rendered with their source lines, or a JSON array."""
        from grpo_dsl.language.diagnostics import render_json, render_text

        stream = stream or sys.stderr
        if not diagnostics:
            return
        text = render_json(diagnostics) if self.json else render_text(diagnostics, sources, color=self.color(stream))
        print(text, file=stream)


def schema_path(verb: str) -> Path:
    """The schema of `grpo VERB --format json`; `grpo plan` prints the plan, whose schema ships with the package."""
    if verb == "plan":
        from grpo_dsl.core.resources import resource_path

        return resource_path("schemas/plan.schema.json")
    return SCHEMAS / f"{verb}.json"


@cache
def _validator(verb: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_path(verb).read_text(encoding="utf-8")))


def _found(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob(f"*{PROGRAM_SUFFIX}")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            yield path


def program_files(given: Iterable[str]) -> list[str]:
    """The files named, with each folder replaced by the `.grpo` files under it (hidden
    folders left out). Raises `UsageError` for a name that is neither, or an empty folder."""
    files: list[str] = []
    for name in given:
        path = Path(name)
        if path.is_dir():
            found = [str(p) for p in _found(path)]
            if not found:
                raise UsageError(f"no {PROGRAM_SUFFIX} files in {name}")
            files += found
        elif path.is_file():
            files.append(name)
        else:
            raise UsageError(f"no such file or folder: {name}")
    return files
