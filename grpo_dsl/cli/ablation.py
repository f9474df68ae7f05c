"""`grpo ablate`: what each lesson and demo of a library is worth on an evaluate block's
questions (leave-one-out or Shapley values, with intervals)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpo_dsl.cli.console import Console
from grpo_dsl.cli.runtime import _announce, _caching, _chosen_block, _program, _progress, _status
from grpo_dsl.evaluation.ablation import format_ablation, start_ablation

__all__ = ["ablate"]


def ablate(args: argparse.Namespace, console: Console) -> int:
    """`grpo ablate FILE [--evaluate NAME] [--library LEARN|MODULE@VERSION] [--runs DIR] [--no-cache]`."""
    plan = _program(args.file, console, "see `grpo ablate --help`")
    name = _chosen_block(plan, "evaluate", args.evaluate)
    result = start_ablation(
        plan,
        name,
        library=args.library,
        base_dir=Path(args.file).resolve().parent,
        runs_root=Path(args.runs),
        on_start=_announce(console, "ablation run"),
        **_progress(console),
        **_caching(args),
    )
    document = result.to_json()
    if console.json:
        console.document("ablate", document)
    else:
        sys.stdout.write(format_ablation(document))
    if result.status != "completed":
        print(f"ablation {result.status}: {result.message}", file=sys.stderr)
    return _status(result.status)
