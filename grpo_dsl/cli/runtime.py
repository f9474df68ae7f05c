"""`grpo run`, `emit`, `eval`, `report` and `replay`: the verbs that run the learning loop
or read what it wrote (`grpo ablate` is in `cli.ablation`, and shares the helpers here).
The HTTP client (`aiohttp`) is imported only when a verb builds its model client, and
`openai` only for the client of a model with `batch = true`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from grpo_dsl import api
from grpo_dsl.cli.console import EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, Console, UsageError
from grpo_dsl.core.files import atomic_write_text
from grpo_dsl.evaluation.evaluate import EvaluationResult, format_evaluation, resume_evaluation, start_evaluation
from grpo_dsl.learning.repeats import RepeatsError, RepeatsResult, best_repeat, resume_repeats, start_repeats
from grpo_dsl.learning.replay import ReplayResult, format_replay, replay_run
from grpo_dsl.learning.run import RunResult, resume_run, start_run
from grpo_dsl.modules import ModuleError, emit_from_run
from grpo_dsl.plan import Plan, load_plan
from grpo_dsl.report import render_report
from grpo_dsl.report.rundata import read_run
from grpo_dsl.runs.progress import format_cost
from grpo_dsl.runs.repeats import is_repeated_run

__all__ = ["emit", "evaluate", "replay", "report", "run"]

BUDGET_LIMITS = {"usd": float, "tokens": int, "calls": int}
DOTENV = ".env"


def _load_dotenv(folder: Path, console: Console) -> None:
    """Read `.env` from a program's folder into the environment, when there is one;
    variables already set win."""
    from dotenv import load_dotenv

    path = folder / DOTENV
    if path.is_file():
        load_dotenv(path, override=False)
        console.detail(f"read the environment from {path}")


def _resumed(run_dir: Path, console: Console) -> None:
    """Before a run or an evaluation is resumed: read `.env` from the folder of the program
    it was started from (recorded in its `run.json`), as the start did. A damaged `run.json`
    is left for the resume to report."""
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    base_dir = info.get("base_dir") if isinstance(info, dict) else None
    if isinstance(base_dir, str):
        _load_dotenv(Path(base_dir), console)


def _program(file: str | None, console: Console, resume_hint: str) -> Plan:
    """The compiled program of `FILE` (its `.env` loaded first); `ProgramError` for a bad one."""
    if file is None:
        raise UsageError(f"give a program FILE, or {resume_hint}")
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"no such file: {file}")
    _load_dotenv(path.resolve().parent, console)
    return load_plan(path)


def _chosen_block(plan: Plan, kind: Literal["learn", "evaluate"], chosen: str | None) -> str:
    """The block of `kind` to run: `chosen` (given with `--KIND`), or the program's only one."""
    try:
        return api.choose_block(plan, kind, chosen)
    except api.ApiError as error:
        raise UsageError(str(error)) from None


def _status(status: str) -> int:
    """The exit status of a run, evaluation or replay that ended with `status`."""
    if status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if status == "completed" else EXIT_PROBLEMS


def _progress(console: Console) -> dict[str, Any]:
    """Where the live progress goes: standard error (JSON documents go to standard
    output, so `--format json` keeps it), or nowhere with `-q`; coloured as `--color`
    and `NO_COLOR` say."""
    return {"stream": None if console.verbosity < 0 else sys.stderr, "color": console.color(sys.stderr)}


def _places(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """What a new run or evaluation of `FILE` is told: the program's folder (its paths are
    relative to it), the runs folder, where the progress goes and whether it may use the
    shared response cache."""
    return {"base_dir": Path(args.file).resolve().parent, "runs_root": Path(args.runs), **_progress(console), **_caching(args)}


def _caching(args: argparse.Namespace) -> dict[str, Any]:
    """Whether a verb that calls a model reads and writes the shared response cache: not with `--no-cache`."""
    return {"shared_cache": not args.no_cache}


def _announce(console: Console, label: str) -> Callable[[Path], None]:
    return lambda run_dir: console.info(f"{label}: {run_dir}")


def _print_run_dir(console: Console) -> Callable[[Path], None]:
    """A learning run's directory, the first line of standard output as soon as it exists
    (scripts read it there); with `--format json` it is in the document instead."""

    def show(run_dir: Path) -> None:
        if not console.json:
            print(run_dir, flush=True)

    return show


# -------------------------------------------------------------------------- run


def _budget(given: Sequence[str]) -> dict[str, float]:
    """The limits of `--budget usd=5 --budget calls=900` (or `usd=5,calls=900`)."""
    limits: dict[str, float] = {}
    for item in (part for text in given for part in text.split(",") if part.strip()):
        name, equals, value = item.strip().partition("=")
        kind = BUDGET_LIMITS.get(name)
        if kind is None or not equals:
            raise UsageError(f"--budget takes usd=N, tokens=N or calls=N, not {item!r}")
        try:
            limits[name] = kind(value)
        except ValueError:
            raise UsageError(f"--budget {name} needs {'a number' if kind is float else 'a whole number'}, not {value!r}") from None
        if limits[name] <= 0:
            raise UsageError(f"--budget {name} must be positive, not {value}")
    return limits


def _run_summary(result: RunResult, title: str = "run") -> list[str]:
    """The run for people: its status, a line per step, its spending and the estimates."""
    lines = [f"{title} {result.status}: {result.run_dir}"]
    if result.message:
        lines.append(f"  {result.message}")
    if result.steps:
        demos = any(s.demos for s in result.steps)
        pruned = any(s.pruned for s in result.steps)
        failures = any(s.failed_rollouts or s.failed_calls for s in result.steps)
        lines.append(
            "  step  reward  kept  applied  rejected  library"
            + ("  demos" if demos else "")
            + ("  pruned" if pruned else "")
            + ("  failed" if failures else "")
        )
        for s in result.steps:
            lines.append(
                f"  {s.step:>4}  {s.mean_reward:6.3f}  {s.kept:>2}/{s.groups:<2} {s.applied:>7}  {s.rejected:>8}  {s.library_size:>7}"
                + (f"  {s.demos:>5}" if demos else "")
                + (f"  {s.pruned:>6}" if pruned else "")
                + (f"  {s.failed_rollouts + s.failed_calls:>6}" if failures else "")
            )
    usage = result.usage.get("total", {})
    batched = f", {usage['batched_calls']} in batch jobs" if usage.get("batched_calls") else ""
    lines.append(
        f"  calls {usage.get('calls', 0)} ({usage.get('cached_calls', 0)} cached{batched}), "
        f"tokens {usage.get('prompt_tokens', 0) + usage.get('completion_tokens', 0)}, cost ${usage.get('usd', 0.0):.4f}"
    )
    for label, count in (("expected before the run", result.estimate), ("re-estimated after step 1", result.reestimate)):
        if count:
            lines.append(f"  {label}: {format_cost(count)}")
    return lines


def _repeats_summary(result: RepeatsResult) -> list[str]:
    """A repeated run for people: each repeat's summary, then how they ended and ranked."""
    lines = [line for number, repeat in enumerate(result.runs, start=1) for line in _run_summary(repeat, f"repeat {number}")]
    lines.append(f"repeats {result.status}: {result.run_dir}")
    if result.message:
        lines.append(f"  {result.message}")
    if result.ranking is not None:
        means = ", ".join(f"repeat {r} {m:.3f}" for r, m in enumerate(result.ranking["means"], start=1))
        lines.append(f"  ranked on `{result.ranking['data']}` by mean reward: {means}; the best is repeat {result.ranking['best']}")
    return lines


def _one_run(result: RunResult) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "status": result.status,
        "message": result.message,
        "steps": [s.to_json() for s in result.steps],
        "library_size": len(result.library),
        "usage": dict(result.usage),
        "estimate": dict(result.estimate) if result.estimate else None,
        "reestimate": dict(result.reestimate) if result.reestimate else None,
    }


def _run_document(result: RunResult | RepeatsResult, emitted: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`grpo run --format json`: the run, or a repeated run's repeats and ranking, and what was emitted."""
    if isinstance(result, RunResult):
        return {**_one_run(result), "emitted": list(emitted)}
    return {
        "run_dir": str(result.run_dir),
        "status": result.status,
        "message": result.message,
        "repeats": [_one_run(r) for r in result.runs],
        "ranking": dict(result.ranking) if result.ranking is not None else None,
        "emitted": list(emitted),
    }


def run(args: argparse.Namespace, console: Console) -> int:
    """`grpo run FILE [--learn NAME] [--runs DIR] [--repeats N] [--no-cache]` or `grpo run --resume RUN_DIR [--budget ...] [--no-cache]`."""
    if args.repeats is not None and args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, not {args.repeats}")
    budget = _budget(args.budget)
    result: RunResult | RepeatsResult
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "run.json").is_file():
            raise UsageError(f"not a run directory: {run_dir}")
        _print_run_dir(console)(run_dir)
        _resumed(run_dir, console)
        if is_repeated_run(run_dir):
            result = resume_repeats(run_dir, budget=budget, **_progress(console), **_caching(args))
        else:
            result = resume_run(run_dir, budget=budget, **_progress(console), **_caching(args))
    else:
        if budget:
            raise UsageError("--budget goes with --resume; for a new run, set `budget { ... }` in the learn block")
        plan = _program(args.file, console, "--resume RUN_DIR")
        learn = _chosen_block(plan, "learn", args.learn)
        repeats = args.repeats or plan.learn(learn).repeats
        if repeats > 1:
            result = start_repeats(plan, learn, repeats=repeats, **_places(args, console), on_start=_print_run_dir(console))
        else:
            result = start_run(plan, learn, **_places(args, console), on_start=_print_run_dir(console))
    status = _status(result.status)
    emitted: list[dict[str, Any]] = []
    if result.status == "completed":
        emitted, failed = _emit_after_run(result.run_dir, console)
        status = EXIT_PROBLEMS if failed else status
    if console.json:
        console.document("run", _run_document(result, emitted))
    else:
        for line in _run_summary(result) if isinstance(result, RunResult) else _repeats_summary(result):
            console.info(line)
    return status


def _published(run_dir: Path) -> tuple[Path, str]:
    """The run whose library an emit publishes, and a note saying which: the run itself, or
    the best-ranked repeat of a repeated run (`RepeatsError` when they are not ranked)."""
    if not is_repeated_run(run_dir):
        return run_dir, ""
    best, why = best_repeat(run_dir)
    return best, f" from {why}"


def _emit_after_run(run_dir: Path, console: Console) -> tuple[list[dict[str, Any]], bool]:
    """Run the program's `emit` blocks whose library is the learn that just finished (for
    a repeated run, its best repeat's): what each wrote, and whether one failed. Repeats
    not ranked yet leave the emits waiting, which is no failure."""
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    plan = Plan.from_json((run_dir / "plan.json").read_text(encoding="utf-8"))
    emits = [name for name in plan.names("emit") if plan.emit(name).library == info["learn"]]
    if not emits:
        return [], False
    try:
        source, note = _published(run_dir)
    except RepeatsError as error:
        console.info(f"emit {', '.join(f'`{n}`' for n in emits)} waits: {error}")
        return [], False
    emitted: list[dict[str, Any]] = []
    failed = False
    for name in emits:
        try:
            result = emit_from_run(plan, name, source, base_dir=Path(info["base_dir"]))
        except ModuleError as error:
            print(f"grpo: emit `{name}` failed: {error}", file=sys.stderr)
            failed = True
            continue
        emitted.append({"emit": name, "path": str(result.path), "version": result.version, "created": result.created})
        console.info(f"{'emitted' if result.created else 'unchanged'} {result.path} {result.version}{note}")
    return emitted, failed


# ------------------------------------------------------------------------- emit


def emit(args: argparse.Namespace, console: Console) -> int:
    """`grpo emit FILE --emit NAME --from RUN_DIR [--step N] [--force]`: a module version from a run."""
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    if not Path(args.run_dir).is_dir():
        raise UsageError(f"no such run directory: {args.run_dir}")
    compiled = load_plan(args.file)
    base_dir = Path(args.file).resolve().parent
    source, note = _published(Path(args.run_dir))
    result = emit_from_run(compiled, args.emit, source, step=args.step, base_dir=base_dir, force=args.force)
    bump = result.change.bump if result.change is not None else None
    if console.json:
        document = {"path": str(result.path), "version": result.version, "created": result.created, "bump": bump, "source": str(source)}
        console.document("emit", document)
    elif result.change is None:
        print(f"{result.path} {result.version}: unchanged, no new version{note}")
    else:
        print(f"{result.path} {result.version}: {bump} version written{note}")
    return EXIT_OK


# ------------------------------------------------------------------------- eval


def evaluate(args: argparse.Namespace, console: Console) -> int:
    """`grpo eval FILE [--evaluate NAME] [--runs DIR] [--no-cache]` or `grpo eval --resume EVAL_DIR [--no-cache]`."""
    result: EvaluationResult
    if args.resume:
        console.info(f"evaluation run: {args.resume}")
        if (Path(args.resume) / "run.json").is_file():
            _resumed(Path(args.resume), console)
        result = resume_evaluation(Path(args.resume), **_progress(console), **_caching(args))
    else:
        compiled = _program(args.file, console, "--resume EVAL_DIR")
        name = _chosen_block(compiled, "evaluate", args.evaluate)
        result = start_evaluation(compiled, name, **_places(args, console), on_start=_announce(console, "evaluation run"))
    if console.json:
        console.document("eval", result.to_json())
    else:
        sys.stdout.write(format_evaluation(result.to_json()))
    if result.status != "completed":
        print(f"evaluation {result.status}: {result.message}", file=sys.stderr)
    return _status(result.status)


# ----------------------------------------------------------------------- report


def report(args: argparse.Namespace, console: Console) -> int:
    """`grpo report RUN_DIR [-o report.html] [--eval EVAL_DIR] [--ablation ABLATION_DIR] [--no-eval]`: one self-contained HTML file."""
    run_dir = Path(args.run_dir)
    if not (run_dir / "run.json").is_file():
        raise UsageError(f"not a run directory: {run_dir}")
    for given, what in ((args.eval_dir, "an evaluation"), (args.ablation_dir, "an ablation")):
        if given is not None and not (Path(given) / "run.json").is_file():
            raise UsageError(f"not {what} run directory: {given}")
    target = Path(args.output)
    if not target.parent.is_dir():
        raise UsageError(f"no such folder: {target.parent}")
    data = read_run(
        run_dir,
        evaluation_dir=Path(args.eval_dir) if args.eval_dir else None,
        ablation_dir=Path(args.ablation_dir) if args.ablation_dir else None,
        find=not args.no_eval,
    )
    atomic_write_text(target, render_report(data))
    if console.json:
        evaluation = data.evaluation.to_json() if data.evaluation is not None else None
        ablation = data.ablation.to_json() if data.ablation is not None else None
        document = {"output": str(target), "run_dir": str(run_dir), "steps": len(data.steps), "evaluation": evaluation, "ablation": ablation}
        console.document("report", document)
    else:
        shown = "with its evaluation" if data.evaluation is not None else "without an evaluation"
        ablated = f" and the ablation of {len(data.ablation.items)} items" if data.ablation is not None else ""
        print(f"{target}: {len(data.steps)} steps, {shown}{ablated}")
    return EXIT_OK


# ----------------------------------------------------------------------- replay


def _replay_document(result: ReplayResult) -> dict[str, Any]:
    diff = result.diff
    return {
        "run_dir": str(result.run_dir),
        "original_dir": str(result.original_dir),
        "policy": result.policy,
        "from_step": result.from_step,
        "offline": result.offline,
        "status": result.status,
        "message": result.message,
        "steps": [s.to_json() for s in result.steps],
        "library": result.library.to_json(),
        "original_library": result.original_library.to_json(),
        "identical": result.identical,
        "diff": diff.to_json(),
        "usage": dict(result.usage),
        "original_usage": dict(result.original_usage),
    }


def replay(args: argparse.Namespace, console: Console) -> int:
    """`grpo replay RUN_DIR --policy FILE:NAME [--from-step K] [--runs DIR] [--offline] [--no-cache]`."""
    if not (Path(args.run_dir) / "run.json").is_file():
        raise UsageError(f"not a run directory: {args.run_dir}")
    file, colon, name = args.policy.rpartition(":")
    if not colon or not file or not name:
        raise UsageError(f"--policy takes FILE:NAME, a .grpo file and one of its policies, not {args.policy!r}")
    if not Path(file).is_file():
        raise UsageError(f"no such file: {file}")
    _load_dotenv(Path(file).resolve().parent, console)
    result = replay_run(
        Path(args.run_dir),
        Path(file),
        name,
        from_step=args.from_step,
        runs_root=Path(args.runs),
        offline=args.offline,
        on_start=_announce(console, "replay run"),
        **_progress(console),
        **_caching(args),
    )
    if console.json:
        console.document("replay", _replay_document(result))
    else:
        sys.stdout.write(format_replay(result))
    return _status(result.status)
