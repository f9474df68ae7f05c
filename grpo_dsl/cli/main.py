"""The `grpo` command: one subcommand per verb, registered in `SUBCOMMANDS`.

Exit status: 0 clean, 1 problems in a program, 2 wrong usage (including a file
that does not exist). This is the only module that chooses colour or exit codes.

Each verb imports what it runs when it runs, so `grpo --version`, `grpo check`
and `grpo fmt` never load the runtime (the client stack, `aiohttp`, `openai`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from grpo_dsl._version import __version__
from grpo_dsl.cli import cache as cache_verb
from grpo_dsl.cli.common import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from grpo_dsl.cli.common import usage_error as _usage_error
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_text
from grpo_dsl.language.diagnostics import (
    Diagnostic,
    ProgramError,
    render_json,
    render_text,
)

if TYPE_CHECKING:
    from grpo_dsl.evaluation.evaluate import EvaluationResult
    from grpo_dsl.learning.repeats import RepeatsResult
    from grpo_dsl.learning.run import RunResult
    from grpo_dsl.plan import Plan

__all__ = [
    "Subcommand",
    "SUBCOMMANDS",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "main",
    "wants_color",
]

EXIT_INTERRUPTED = 130


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
    from grpo_dsl.language.checks import check_path

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


def fmt(args: argparse.Namespace) -> int:
    """`grpo fmt FILE... [--check]`: rewrite each program in the canonical layout."""
    from grpo_dsl.language.fmt import format_program
    from grpo_dsl.language.parser import parse_file

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
            atomic_write_text(path, formatted)
            print(f"reformatted {name}", file=sys.stderr)
    return status


# -------------------------------------------------------------------------- run


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


def _no_cache_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the shared response cache: pay for every call (a run still answers from its own record)",
    )


BUDGET_LIMITS = {"usd": float, "tokens": int, "calls": int}


def _budget(given: Sequence[str]) -> tuple[dict[str, float], str | None]:
    """The limits of `--budget usd=5 --budget calls=900` (or `usd=5,calls=900`), or the problem with them."""
    limits: dict[str, float] = {}
    for item in (part for text in given for part in text.split(",") if part.strip()):
        name, equals, value = item.strip().partition("=")
        kind = BUDGET_LIMITS.get(name)
        if kind is None or not equals:
            return {}, f"--budget takes usd=N, tokens=N or calls=N, not {item!r}"
        try:
            limits[name] = kind(value)
        except ValueError:
            return {}, f"--budget {name} needs {'a number' if kind is float else 'a whole number'}, not {value!r}"
        if limits[name] <= 0:
            return {}, f"--budget {name} must be positive, not {value}"
    return limits, None


def _print_summary(result: RunResult, title: str = "run") -> None:
    from grpo_dsl.runs.progress import format_cost

    out = sys.stderr
    print(f"{title} {result.status}: {result.run_dir}", file=out)
    if result.message:
        print(f"  {result.message}", file=out)
    if result.steps:
        demos = any(s.demos for s in result.steps)
        pruned = any(s.pruned for s in result.steps)
        failures = any(s.failed_rollouts or s.failed_calls for s in result.steps)
        print(
            "  step  reward  kept  applied  rejected  library"
            + ("  demos" if demos else "")
            + ("  pruned" if pruned else "")
            + ("  failed" if failures else ""),
            file=out,
        )
        for s in result.steps:
            print(
                f"  {s.step:>4}  {s.mean_reward:6.3f}  {s.kept:>2}/{s.groups:<2} {s.applied:>7}  {s.rejected:>8}  {s.library_size:>7}"
                + (f"  {s.demos:>5}" if demos else "")
                + (f"  {s.pruned:>6}" if pruned else "")
                + (f"  {s.failed_rollouts + s.failed_calls:>6}" if failures else ""),
                file=out,
            )
    usage = result.usage.get("total", {})
    batched = f", {usage['batched_calls']} in batch jobs" if usage.get("batched_calls") else ""
    print(
        f"  calls {usage.get('calls', 0)} ({usage.get('cached_calls', 0)} cached{batched}), "
        f"tokens {usage.get('prompt_tokens', 0) + usage.get('completion_tokens', 0)}, cost ${usage.get('usd', 0.0):.4f}",
        file=out,
    )
    for label, count in (("expected before the run", result.estimate), ("re-estimated after step 1", result.reestimate)):
        if count:
            print(f"  {label}: {format_cost(count)}", file=out)


def _print_repeats(result: RepeatsResult) -> None:
    for number, repeat in enumerate(result.runs, start=1):
        _print_summary(repeat, f"repeat {number}")
    print(f"repeats {result.status}: {result.run_dir}" + (f"\n  {result.message}" if result.message else ""), file=sys.stderr)
    if result.ranking is not None:
        means = ", ".join(f"repeat {r} {m:.3f}" for r, m in enumerate(result.ranking["means"], start=1))
        print(f"  ranked on `{result.ranking['data']}` by mean reward: {means}; the best is repeat {result.ranking['best']}", file=sys.stderr)


def _finished(status: str, run_dir: Path) -> int:
    """The exit status of a run that ended with `status`; a completed run runs its emits."""
    if status == "interrupted":
        return EXIT_INTERRUPTED
    if status != "completed":
        return EXIT_PROBLEMS
    return _emit_after_run(run_dir)


def _finish_repeats(result: RepeatsResult) -> int:
    _print_repeats(result)
    return _finished(result.status, result.run_dir)


def run(args: argparse.Namespace) -> int:
    """`grpo run FILE [--learn NAME] [--runs DIR] [--repeats N] [--no-cache]` or `grpo run --resume RUN_DIR [--budget LIMIT=N]`."""
    from grpo_dsl import api
    from grpo_dsl.learning.repeats import resume_repeats, start_repeats
    from grpo_dsl.plan import load_plan
    from grpo_dsl.runs.repeats import is_repeated_run

    if args.repeats is not None and args.repeats < 1:
        return _usage_error(f"--repeats must be at least 1, not {args.repeats}")
    budget, problem = _budget(args.budget)
    if problem:
        return _usage_error(problem)
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "run.json").is_file():
            return _usage_error(f"not a run directory: {run_dir}")
        print(run_dir)
        if is_repeated_run(run_dir):
            return _finish_repeats(resume_repeats(run_dir, stream=sys.stderr, budget=budget, shared_cache=not args.no_cache))
        result = api.resume(run_dir, budget=budget, stream=sys.stderr, cache=not args.no_cache)
    else:
        if budget:
            return _usage_error("--budget goes with --resume; for a new run, set `budget { ... }` in the learn block")
        if args.file is None:
            return _usage_error("give a program FILE, or --resume RUN_DIR")
        if _missing_files([args.file]):
            return _usage_error(f"no such file: {args.file}")
        try:
            plan = load_plan(args.file)
            learn = api.choose_block(plan, "learn", args.learn)
        except ProgramError as error:
            print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stdout)))
            return EXIT_PROBLEMS
        except api.ApiError as error:
            return _usage_error(str(error))
        repeats = args.repeats or plan.learn(learn).repeats
        if repeats > 1:
            return _finish_repeats(
                start_repeats(
                    plan,
                    learn,
                    repeats=repeats,
                    base_dir=Path(args.file).resolve().parent,
                    runs_root=Path(args.runs),
                    stream=sys.stderr,
                    on_start=lambda run_dir: print(run_dir, flush=True),
                    shared_cache=not args.no_cache,
                )
            )
        result = api.learn(
            args.file,
            block=learn,
            runs=args.runs,
            stream=sys.stderr,
            on_start=lambda run_dir: print(run_dir, flush=True),
            cache=not args.no_cache,
        )
    _print_summary(result)
    return _finished(result.status, result.run_dir)


def _published(run_dir: Path) -> tuple[Path, str]:
    """The run whose library an emit publishes, and a note saying which: the run itself, or
    the best-ranked repeat of a repeated run (`RepeatsError` when they are not ranked)."""
    from grpo_dsl.learning.repeats import best_repeat
    from grpo_dsl.runs.repeats import is_repeated_run

    if not is_repeated_run(run_dir):
        return run_dir, ""
    best, why = best_repeat(run_dir)
    return best, f" from {why}"


def _emit_after_run(run_dir: Path) -> int:
    """Run the program's `emit` blocks whose library is the learn that just finished."""
    from grpo_dsl.learning.repeats import RepeatsError
    from grpo_dsl.modules import ModuleError, emit_from_run
    from grpo_dsl.plan import Plan

    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    plan = Plan.from_json((run_dir / "plan.json").read_text(encoding="utf-8"))
    emits = [name for name in plan.names("emit") if plan.emit(name).library == info["learn"]]
    if not emits:
        return EXIT_OK
    try:
        source, note = _published(run_dir)
    except RepeatsError as error:
        print(f"emit {', '.join(f'`{n}`' for n in emits)} waits: {error}", file=sys.stderr)
        return EXIT_OK
    status = EXIT_OK
    for name in emits:
        try:
            emitted = emit_from_run(plan, name, source, base_dir=Path(info["base_dir"]))
        except ModuleError as error:
            print(f"grpo: emit `{name}` failed: {error}", file=sys.stderr)
            status = EXIT_PROBLEMS
            continue
        verb = "emitted" if emitted.created else "unchanged"
        print(f"{verb} {emitted.path} {emitted.version}{note}", file=sys.stderr)
    return status


# ------------------------------------------------------------------------- plan


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .grpo program")
    parser.add_argument("-o", "--output", metavar="PLAN", help="write the plan JSON to this file instead of stdout")
    parser.add_argument(
        "--explain", action="store_true", help="print the steps, the calls each makes, the estimate and the defaults filled in"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print diagnostics")


def _print_diagnostics(diagnostics: Sequence[Diagnostic], sources: dict[str, str], form: str) -> None:
    if diagnostics:
        text = render_json(diagnostics) if form == "json" else render_text(diagnostics, sources, color=wants_color(sys.stderr))
        print(text, file=sys.stderr)


def plan(args: argparse.Namespace) -> int:
    """`grpo plan FILE [-o PLAN] [--explain]`: the execution plan as JSON, or explained."""
    from grpo_dsl.language.checks import check_path
    from grpo_dsl.plan import compile as compile_plan
    from grpo_dsl.plan.explain import explain

    if _missing_files([args.file]):
        return _usage_error(f"no such file: {args.file}")
    result = check_path(args.file)
    if result.workspace is None or not result.ok:
        _print_diagnostics(result.diagnostics, result.sources, args.format)
        return EXIT_PROBLEMS
    try:
        compiled = compile_plan(result.workspace)
    except ProgramError as error:
        _print_diagnostics(error.diagnostics, error.sources or result.sources, args.format)
        return EXIT_PROBLEMS
    _print_diagnostics(result.diagnostics, result.sources, args.format)
    if args.output is not None:
        target = Path(args.output)
        if not target.parent.is_dir():
            return _usage_error(f"no such folder: {target.parent}")
        atomic_write_text(target, compiled.to_json())
    elif not args.explain:
        sys.stdout.write(compiled.to_json())
    if args.explain:
        sys.stdout.write(explain(compiled, args.file))
    return EXIT_OK


# ------------------------------------------------------------------- emit, module


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


def emit(args: argparse.Namespace) -> int:
    """`grpo emit FILE --emit NAME --from RUN_DIR [--step N] [--force]`: a module version from a run."""
    from grpo_dsl.modules import emit_from_run
    from grpo_dsl.plan import load_plan

    if _missing_files([args.file]):
        return _usage_error(f"no such file: {args.file}")
    if not Path(args.run_dir).is_dir():
        return _usage_error(f"no such run directory: {args.run_dir}")
    try:
        compiled = load_plan(args.file)
    except ProgramError as error:
        print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stdout)))
        return EXIT_PROBLEMS
    base_dir = Path(args.file).resolve().parent
    source, note = _published(Path(args.run_dir))
    result = emit_from_run(compiled, args.emit, source, step=args.step, base_dir=base_dir, force=args.force)
    if result.change is None:
        print(f"{result.path} {result.version}: unchanged, no new version{note}")
    else:
        print(f"{result.path} {result.version}: {result.change.bump} version written{note}")
    return EXIT_OK


def _module_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="describe a version and list its experiences")
    show.add_argument("reference", metavar="PATH[@VERSION]", help="a module folder, optionally with a version or range")
    log = actions.add_parser("log", help="list every version, newest first")
    log.add_argument("reference", metavar="PATH")
    diff = actions.add_parser("diff", help="the experiences added, removed and edited between two versions")
    diff.add_argument("reference", metavar="PATH@A")
    diff.add_argument("other", metavar="PATH@B")
    blame = actions.add_parser("blame", help="the steps, groups, rewards and rationales behind one experience")
    blame.add_argument("reference", metavar="PATH[@VERSION]")
    blame.add_argument("id", metavar="ID", help="an experience id such as E3")
    package = actions.add_parser("package", help="build an installable wheel of a version that needs only jinja2")
    package.add_argument("reference", metavar="PATH[@VERSION]")
    package.add_argument("--name", required=True, metavar="NAME", help="the distribution name of the wheel")
    package.add_argument("--out", default="dist", metavar="DIR", help="where the wheel goes (default: ./dist)")
    export = actions.add_parser("export", help="register every version (or one) in a prompt registry")
    export.add_argument("reference", metavar="PATH[@VERSION]")
    export.add_argument("--to", required=True, choices=("mlflow",), help="the registry")
    export.add_argument("--tracking-uri", required=True, metavar="URI", help="the MLflow tracking server, e.g. http://127.0.0.1:5000")
    export.add_argument("--name", metavar="NAME", help="the prompt's name in the registry (default: the module's name)")


def _module_text(args: argparse.Namespace) -> str:
    from grpo_dsl.modules import (
        blame,
        diff_modules,
        export_to_mlflow,
        format_blame,
        format_diff,
        format_log,
        format_show,
        load_module,
        module_log,
        package_module,
        parse_reference,
    )

    path, version = parse_reference(args.reference)
    if args.action == "log":
        return format_log(module_log(path))
    if args.action == "diff":
        other_path, other_version = parse_reference(args.other)
        return format_diff(diff_modules(load_module(path, version), load_module(other_path, other_version)))
    if args.action == "blame":
        return format_blame(blame(load_module(path, version), args.id))
    if args.action == "package":
        return f"{package_module(path, version, name=args.name, out_dir=args.out)}"
    if args.action == "export":
        return "\n".join(
            f"{path} {r.module_version}: {'registered as' if r.created else 'already registered as'} {r.prompt} version {r.prompt_version}"
            for r in export_to_mlflow(path, version, tracking_uri=args.tracking_uri, name=args.name)
        )
    return format_show(load_module(path, version))


def module(args: argparse.Namespace) -> int:
    """`grpo module show|log|diff|blame|package|export`: read the history of a prompt module, package or export it."""
    from grpo_dsl.modules import parse_reference

    references = [args.reference] + ([args.other] if args.action == "diff" else [])
    for reference in references:
        path, _ = parse_reference(reference)
        if not (path / "index.json").is_file():
            return _usage_error(f"{path} is not a prompt module: it has no index.json")
    text = _module_text(args)
    print(text)
    return EXIT_OK


# ------------------------------------------------------------------- eval, report


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE", help="a .grpo program")
    parser.add_argument("--evaluate", metavar="NAME", help="the evaluate block to run (needed when there are several)")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where runs are found and written (default: ./runs)")
    parser.add_argument("--resume", metavar="EVAL_DIR", help="continue (or replay) an evaluation run directory")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="a table with sentences, or JSON")
    _no_cache_argument(parser)


def _evaluate_block(file: str, chosen: str | None) -> tuple[Plan, str] | int:
    """The compiled program and the evaluate block to run (`chosen`, or its only one),
    or the exit status of the problem, reported."""
    from grpo_dsl import api
    from grpo_dsl.plan import load_plan

    if _missing_files([file]):
        return _usage_error(f"no such file: {file}")
    try:
        compiled = load_plan(file)
    except ProgramError as error:
        print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stderr)), file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        return compiled, api.choose_block(compiled, "evaluate", chosen)
    except api.ApiError as error:
        return _usage_error(str(error))


def _results(document: Mapping[str, Any], form: str, text: Callable[[Mapping[str, Any]], str], what: str) -> int:
    """Print an evaluation's or an ablation's document (as JSON or as `text` makes it) and
    return the exit status of how it ended."""
    if form == "json":
        print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        sys.stdout.write(text(document))
    status = document["status"]
    if status != "completed":
        print(f"{what} {status}: {document['message']}", file=sys.stderr)
    if status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if status == "completed" else EXIT_PROBLEMS


def _start_evaluation(args: argparse.Namespace) -> EvaluationResult | int:
    from grpo_dsl import api

    if args.file is None:
        return _usage_error("give a program FILE, or --resume EVAL_DIR")
    if _missing_files([args.file]):
        return _usage_error(f"no such file: {args.file}")
    try:
        return api.evaluate(
            args.file,
            block=args.evaluate,
            runs=args.runs,
            stream=sys.stderr,
            on_start=lambda run_dir: print(f"evaluation run: {run_dir}", file=sys.stderr, flush=True),
            cache=not args.no_cache,
        )
    except ProgramError as error:
        print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stderr)), file=sys.stderr)
        return EXIT_PROBLEMS
    except api.ApiError as error:
        return _usage_error(str(error))


def evaluate(args: argparse.Namespace) -> int:
    """`grpo eval FILE [--evaluate NAME] [--runs DIR] [--format text|json] [--no-cache]` or `grpo eval --resume EVAL_DIR`."""
    from grpo_dsl.evaluation.evaluate import format_evaluation, resume_evaluation

    if args.resume:
        print(f"evaluation run: {args.resume}", file=sys.stderr, flush=True)
        result = resume_evaluation(Path(args.resume), stream=sys.stderr, shared_cache=not args.no_cache)
    else:
        started = _start_evaluation(args)
        if isinstance(started, int):
            return started
        result = started
    return _results(result.to_json(), args.format, format_evaluation, "evaluation")


def _ablate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .grpo program")
    parser.add_argument("--evaluate", metavar="NAME", help="the evaluate block whose questions measure (needed when there are several)")
    parser.add_argument(
        "--library",
        metavar="LEARN|MODULE@VERSION",
        help="the library to ablate: a learn (LEARN#R for one repeat) or a module (default: the one the block compares)",
    )
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where runs are found and written (default: ./runs)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="a table, or JSON")
    _no_cache_argument(parser)


def ablate(args: argparse.Namespace) -> int:
    """`grpo ablate FILE [--evaluate NAME] [--library LEARN|MODULE@VERSION] [--runs DIR] [--format text|json] [--no-cache]`."""
    from grpo_dsl.evaluation.ablation import format_ablation, start_ablation

    chosen = _evaluate_block(args.file, args.evaluate)
    if isinstance(chosen, int):
        return chosen
    compiled, name = chosen
    result = start_ablation(
        compiled,
        name,
        library=args.library,
        base_dir=Path(args.file).resolve().parent,
        runs_root=Path(args.runs),
        stream=sys.stderr,
        on_start=lambda run_dir: print(f"ablation run: {run_dir}", file=sys.stderr, flush=True),
        shared_cache=not args.no_cache,
    )
    return _results(result.to_json(), args.format, format_ablation, "ablation")


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


def report(args: argparse.Namespace) -> int:
    """`grpo report RUN_DIR [-o report.html] [--eval EVAL_DIR] [--ablation ABLATION_DIR] [--no-eval]`: one HTML file."""
    from grpo_dsl.report import render_report
    from grpo_dsl.report.rundata import read_run

    run_dir = Path(args.run_dir)
    if not (run_dir / "run.json").is_file():
        return _usage_error(f"not a run directory: {run_dir}")
    for given, what in ((args.eval_dir, "an evaluation"), (args.ablation_dir, "an ablation")):
        if given is not None and not (Path(given) / "run.json").is_file():
            return _usage_error(f"not {what} run directory: {given}")
    target = Path(args.output)
    if not target.parent.is_dir():
        return _usage_error(f"no such folder: {target.parent}")
    data = read_run(
        run_dir,
        evaluation_dir=Path(args.eval_dir) if args.eval_dir else None,
        ablation_dir=Path(args.ablation_dir) if args.ablation_dir else None,
        find=not args.no_eval,
    )
    atomic_write_text(target, render_report(data))
    shown = "with its evaluation" if data.evaluation is not None else "without an evaluation"
    ablated = f" and the ablation of {len(data.ablation.items)} items" if data.ablation is not None else ""
    print(f"{target}: {len(data.steps)} steps, {shown}{ablated}")
    return EXIT_OK


# ----------------------------------------------------------------------- replay


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the recorded learning run to replay")
    parser.add_argument("--policy", required=True, metavar="FILE:NAME", help="a policy declared in a .grpo file")
    parser.add_argument("--from-step", type=int, default=1, metavar="K", help="replay from step K; earlier steps are copied (default: 1)")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="where the replay run directory goes (default: ./runs)")
    parser.add_argument("--offline", action="store_true", help="only apply the new rule to the recorded operations; make no call")
    _no_cache_argument(parser)


def replay(args: argparse.Namespace) -> int:
    """`grpo replay RUN_DIR --policy FILE:NAME [--from-step K] [--runs DIR] [--offline] [--no-cache]`."""
    from grpo_dsl.learning.replay import format_replay, replay_run

    if not (Path(args.run_dir) / "run.json").is_file():
        return _usage_error(f"not a run directory: {args.run_dir}")
    file, colon, name = args.policy.rpartition(":")
    if not colon or not file or not name:
        return _usage_error(f"--policy takes FILE:NAME, a .grpo file and one of its policies, not {args.policy!r}")
    if _missing_files([file]):
        return _usage_error(f"no such file: {file}")
    try:
        result = replay_run(
            Path(args.run_dir),
            Path(file),
            name,
            from_step=args.from_step,
            runs_root=Path(args.runs),
            offline=args.offline,
            stream=sys.stderr,
            shared_cache=not args.no_cache,
            on_start=lambda run_dir: print(f"replay run: {run_dir}", file=sys.stderr, flush=True),
        )
    except ProgramError as error:
        print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stderr)), file=sys.stderr)
        return EXIT_PROBLEMS
    sys.stdout.write(format_replay(result))
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.status == "completed" else EXIT_PROBLEMS


# -------------------------------------------------------------------------- lsp


def _lsp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk over standard input and output (the only transport)")


def lsp(args: argparse.Namespace) -> int:
    """`grpo lsp`: the language server, over standard input and output."""
    try:  # pygls comes with the optional `lsp` extra
        from grpo_dsl.lsp import serve
    except ModuleNotFoundError as missing:
        package = (missing.name or "pygls").partition(".")[0]
        return _usage_error(f"`grpo lsp` needs the lsp extra ({package} is missing): pip install 'grpo-dsl[lsp]'")
    serve()
    return EXIT_OK


# ------------------------------------------------------------------------ entry

SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("check", "parse and check programs, print every problem", _check_arguments, check),
    Subcommand("fmt", "rewrite programs in the canonical layout", _fmt_arguments, fmt),
    Subcommand("plan", "compile a program to its execution plan, with a cost estimate", _plan_arguments, plan),
    Subcommand("run", "run a learn block: Training-Free GRPO, step by step", _run_arguments, run),
    Subcommand("emit", "write the library of a run as a prompt module version", _emit_arguments, emit),
    Subcommand("module", "show, log, diff, blame, package and export the versions of a prompt module", _module_arguments, module),
    Subcommand("eval", "evaluate libraries side by side, with intervals and paired differences", _eval_arguments, evaluate),
    Subcommand("ablate", "measure what each lesson and demo of a library is worth, with intervals", _ablate_arguments, ablate),
    Subcommand("report", "write the HTML report of a run: learning curves, library changes, evaluation", _report_arguments, report),
    Subcommand("replay", "replay a recorded run under another policy and compare the libraries", _replay_arguments, replay),
    Subcommand("cache", "show or prune the response cache every run shares", cache_verb.add_arguments, cache_verb.run),
    Subcommand("lsp", "run the language server for editors, over standard input and output", _lsp_arguments, lsp),
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
    try:
        return run(args)
    except ProgramError as error:
        print(render_text(error.diagnostics, error.sources, color=wants_color(sys.stderr)), file=sys.stderr)
    except GrpoError as error:
        print(f"grpo: error: {error}", file=sys.stderr)
    except OSError as error:
        print(f"grpo: error: {error.strerror or error}: {error.filename or 'a file'}", file=sys.stderr)
    return EXIT_PROBLEMS

