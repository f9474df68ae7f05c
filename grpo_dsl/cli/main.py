"""The `grpo` command: one subcommand per verb, registered in `SUBCOMMANDS`.

Each verb's arguments are declared here; its code lives in a module of `grpo_dsl.cli`
that is imported only when the verb runs, so `grpo --version`, `grpo check` and
`grpo fmt` load nothing of the runtime. Exit statuses are listed in docs/cli.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grpo_dsl._version import __version__
from grpo_dsl.cli.console import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    Console,
    UsageError,
    common_options,
)
from grpo_dsl.core.errors import GrpoError

__all__ = [
    "Subcommand",
    "SUBCOMMANDS",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "main",
]

ENDPOINTS = ("openai", "deepseek", "ollama", "vllm", "local")


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A `grpo NAME ...` verb: how to declare its arguments, and the function that runs
    it as `module:function` of `grpo_dsl.cli`, called with the arguments and a `Console`."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    target: str
    common: bool = True
    """Whether the verb takes the common options (`--format`, `-q`/`-v`, `--color`)."""

    def function(self) -> Callable[[argparse.Namespace, Console], int]:
        """The verb's code, imported now."""
        module, _, name = self.target.partition(":")
        run: Callable[[argparse.Namespace, Console], int] = getattr(importlib.import_module(f"grpo_dsl.cli.{module}"), name)
        return run


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default=".", metavar="DIR", help="where the project goes (default: here); made when missing")
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="openai", help="the kind of model endpoint (default: openai)")
    parser.add_argument("--force", action="store_true", help="overwrite starter files that already exist")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="PATH", help="a .grpo program, or a folder of them")


def _fmt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="PATH", help="a .grpo program rewritten in place, a folder of them, or - (standard input to standard output)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    parser.add_argument("--diff", action="store_true", help="change nothing; print what would change as a unified diff")


def _no_cache_argument(parser: argparse.ArgumentParser) -> None:
    """`--no-cache`, for every verb that calls a model."""
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the shared response cache: pay for every call (a run still answers from its own record)",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE", help="a .grpo program")
    parser.add_argument("--learn", metavar="NAME", help="the learn block to run (needed when there are several)")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where run directories go (default: ./runs)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted, stopped or failed run")
    parser.add_argument(
        "--repeats", type=int, metavar="N", help="learn N times with seeds seed .. seed + N - 1 (default: the learn's `repeats`)"
    )
    parser.add_argument(
        "--budget",
        metavar="LIMIT=N",
        action="append",
        default=[],
        help="with --resume: a new limit (usd=, tokens=, calls=) in place of the learn's, e.g. to go on after a budget stop",
    )
    _no_cache_argument(parser)


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .grpo program")
    parser.add_argument("-o", "--output", metavar="PLAN", help="also write the plan JSON to this file")
    parser.add_argument("--explain", action="store_true", help="the human view (the default with --format text), also with -o")


def _emit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the .grpo program with the emit block")
    parser.add_argument("--emit", required=True, metavar="NAME", help="the emit block to write")
    parser.add_argument("--from", dest="run_dir", required=True, metavar="RUN_DIR", help="the run whose library is emitted")
    parser.add_argument("--step", type=int, metavar="N", help="the library after step N (default: the last completed step)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish a run that did not complete, write outside the program's folder, or into a folder that is not a module",
    )


def _module_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = common_options()
    show = actions.add_parser("show", help="describe a version and list its experiences", parents=[common])
    show.add_argument("reference", metavar="PATH[@VERSION]", help="a module folder, optionally with a version or range")
    log = actions.add_parser("log", help="list every version, newest first", parents=[common])
    log.add_argument("reference", metavar="PATH")
    diff = actions.add_parser("diff", help="the experiences added, removed and edited between two versions", parents=[common])
    diff.add_argument("reference", metavar="PATH@A")
    diff.add_argument("other", metavar="PATH@B")
    blame = actions.add_parser("blame", help="the steps, groups, rewards and rationales behind one experience", parents=[common])
    blame.add_argument("reference", metavar="PATH[@VERSION]")
    blame.add_argument("id", metavar="ID", help="an experience id such as E3")
    package = actions.add_parser("package", help="build an installable wheel of a version that needs only jinja2", parents=[common])
    package.add_argument("reference", metavar="PATH[@VERSION]")
    package.add_argument("--name", required=True, metavar="NAME", help="the distribution name of the wheel")
    package.add_argument("--out", default="dist", metavar="DIR", help="where the wheel goes (default: ./dist)")
    export = actions.add_parser("export", help="register every version (or one) in a prompt registry", parents=[common])
    export.add_argument("reference", metavar="PATH[@VERSION]")
    export.add_argument("--to", required=True, choices=("mlflow",), help="the registry")
    export.add_argument("--tracking-uri", required=True, metavar="URI", help="the MLflow tracking server, e.g. http://127.0.0.1:5000")
    export.add_argument("--name", metavar="NAME", help="the prompt's name in the registry (default: the module's name)")


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE", help="a .grpo program")
    parser.add_argument("--evaluate", metavar="NAME", help="the evaluate block to run (needed when there are several)")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where runs are found and written (default: ./runs)")
    parser.add_argument("--resume", metavar="EVAL_DIR", help="continue (or replay) an evaluation run directory")
    _no_cache_argument(parser)


def _ablate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .grpo program")
    parser.add_argument("--evaluate", metavar="NAME", help="the evaluate block whose questions measure (needed when there are several)")
    parser.add_argument(
        "--library",
        metavar="LEARN|MODULE@VERSION",
        help="the library to ablate: a learn (LEARN#R for one repeat) or a module (default: the one the block compares)",
    )
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where runs are found and written (default: ./runs)")
    _no_cache_argument(parser)


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a learning run directory (or an evaluation run directory)")
    parser.add_argument("-o", "--output", metavar="HTML", default="report.html", help="the HTML file to write (default: report.html)")
    parser.add_argument(
        "--eval",
        dest="eval_dir",
        metavar="EVAL_DIR",
        help="the evaluation to show (default: the newest one under the same runs folder that compared this run's library)",
    )
    parser.add_argument(
        "--ablation",
        dest="ablation_dir",
        metavar="ABLATION_DIR",
        help="the ablation to show (default: the newest one under the same runs folder of this run's library)",
    )
    parser.add_argument("--no-eval", action="store_true", help="show no evaluation and no ablation")


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the recorded learning run to replay")
    parser.add_argument("--policy", required=True, metavar="FILE:NAME", help="a policy declared in a .grpo file")
    parser.add_argument("--from-step", type=int, default=1, metavar="K", help="replay from step K; earlier steps are copied (default: 1)")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where the replay run directory goes (default: ./runs)")
    parser.add_argument("--offline", action="store_true", help="only apply the new rule to the recorded operations; make no call")
    _no_cache_argument(parser)


def _cache_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = common_options()
    info = actions.add_parser("info", help="entries, size, and how much of the last run was answered from the cache", parents=[common])
    prune = actions.add_parser("prune", help="delete the entries no run has used for a while", parents=[common])
    prune.add_argument("--older-than", required=True, metavar="AGE", help="an age such as 30d, 12h or 2w")
    for action in (info, prune):
        action.add_argument("--dir", metavar="DIR", help="the cache folder (default: the user cache directory or $GRPO_CACHE_DIR)")


def _lsp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk over standard input and output (the only transport)")


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("init", "start a project: a program, a small dataset, a reward and .env.example", _init_arguments, "init:init"),
    Subcommand("check", "parse and check programs, print every problem", _check_arguments, "source:check"),
    Subcommand("fmt", "rewrite programs in the canonical layout", _fmt_arguments, "source:fmt"),
    Subcommand("plan", "compile a program: what it will do and cost, or its execution plan as JSON", _plan_arguments, "planning:plan"),
    Subcommand("run", "run a learn block: Training-Free GRPO, step by step", _run_arguments, "runtime:run"),
    Subcommand("emit", "write the library of a run as a prompt module version", _emit_arguments, "runtime:emit"),
    Subcommand("module", "show, log, diff, blame, package and export the versions of a prompt module", _module_arguments, "module:module", common=False),
    Subcommand("eval", "evaluate libraries side by side, with intervals and paired differences", _eval_arguments, "runtime:evaluate"),
    Subcommand("ablate", "measure what each lesson and demo of a library is worth, with intervals", _ablate_arguments, "ablation:ablate"),
    Subcommand("report", "write the HTML report of a run: learning curves, library changes, evaluation", _report_arguments, "runtime:report"),
    Subcommand("replay", "replay a recorded run under another policy and compare the libraries", _replay_arguments, "runtime:replay"),
    Subcommand("cache", "show or prune the response cache every run shares", _cache_arguments, "cache:cache", common=False),
    Subcommand("lsp", "run the language server for editors, over standard input and output", _lsp_arguments, "source:lsp", common=False),
)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo", description="Training-Free GRPO, declared in .grpo files.")
    parser.add_argument("--version", action="version", version=f"grpo-dsl {__version__}")
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()
    for subcommand in SUBCOMMANDS:
        verb = verbs.add_parser(
            subcommand.name, help=subcommand.help, description=subcommand.help, parents=[common] if subcommand.common else []
        )
        subcommand.add_arguments(verb)
        verb.set_defaults(subcommand=subcommand)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `grpo` with `argv` (default: the process arguments); return the exit status."""
    try:
        args = _argument_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    subcommand: Subcommand = args.subcommand
    console = Console.of(args)
    try:
        return subcommand.function()(args, console)
    except UsageError as error:
        print(f"grpo: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("grpo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except GrpoError as error:
        _report_error(console, error)
    except OSError as error:
        _report_error(console, error, f"{error.strerror or error}: {error.filename or 'a file'}")
    return EXIT_PROBLEMS


def _report_error(console: Console, error: Exception, message: str | None = None) -> None:
    """An expected failure: its message (a program's as diagnostics); `-v` adds the traceback."""
    from grpo_dsl.language.diagnostics import ProgramError

    if console.verbosity > 0:
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, ProgramError):
        console.diagnostics(error.diagnostics, error.sources)
    else:
        print(f"grpo: error: {message or error}", file=sys.stderr)
