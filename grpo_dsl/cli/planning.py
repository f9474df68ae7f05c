"""`grpo plan`: what a program will do and cost, or its execution plan as JSON.

It compiles the program and calls no model, so it imports neither `openai` nor the runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grpo_dsl.cli.console import EXIT_OK, EXIT_PROBLEMS, Console, UsageError
from grpo_dsl.core.files import atomic_write_text
from grpo_dsl.language.checks import check_path
from grpo_dsl.language.diagnostics import ProgramError
from grpo_dsl.plan import compile as compile_plan
from grpo_dsl.plan.explain import explain

__all__ = ["plan"]


def plan(args: argparse.Namespace, console: Console) -> int:
    """`grpo plan FILE [-o PLAN]`: the human view (steps, calls, the cost estimate and the
    defaults filled in), or with `--format json` the plan itself; `-o` also writes the plan."""
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    target = Path(args.output) if args.output is not None else None
    if target is not None and not target.parent.is_dir():
        raise UsageError(f"no such folder: {target.parent}")
    result = check_path(args.file)
    if result.workspace is None or not result.ok:
        console.diagnostics(result.diagnostics, result.sources)
        return EXIT_PROBLEMS
    try:
        compiled = compile_plan(result.workspace)
    except ProgramError as error:
        console.diagnostics(error.diagnostics, error.sources or result.sources)
        return EXIT_PROBLEMS
    console.diagnostics(result.diagnostics, result.sources)
    if target is not None:
        atomic_write_text(target, compiled.to_json())
        console.info(f"wrote the plan to {target}")
    if console.json:
        console.document("plan", json.loads(compiled.to_json()))
    elif target is None or args.explain:
        sys.stdout.write(explain(compiled, args.file))
    return EXIT_OK
