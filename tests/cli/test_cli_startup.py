"""`grpo --version`, `grpo check` and `grpo fmt` load neither `openai` nor the runtime.

Measured with `python -X importtime`, whose report names every module a process
imports: the runtime (client stack, runs, learning, evaluation, rewards, rollouts,
modules, the report) and its HTTP libraries stay out until a verb needs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FULL = Path(__file__).parents[1] / "fixtures" / "full.grpo"
RUNTIME = (
    "openai",
    "aiohttp",
    "httpx",
    "grpo_dsl.clients",
    "grpo_dsl.runs",
    "grpo_dsl.rewards",
    "grpo_dsl.rollout",
    "grpo_dsl.modules",
    "grpo_dsl.evaluation",
    "grpo_dsl.learning",
    "grpo_dsl.report",
)


def imported(*args: str) -> set[str]:
    """The modules `python -m grpo_dsl.cli ARGS` imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "grpo_dsl.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:") and "|" in line}


def runtime_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in RUNTIME or any(m == r or m.startswith(r + ".") for r in RUNTIME))


@pytest.mark.parametrize("args", [("--version",), ("check", str(FULL)), ("fmt", "--check", str(FULL))], ids=["version", "check", "fmt"])
def test_no_runtime_is_imported(args: tuple[str, ...]) -> None:
    modules = imported(*args)
    assert "grpo_dsl.cli.main" in modules, "the report lists the command's own modules"
    assert runtime_modules(modules) == []


def test_the_version_needs_not_even_the_parser() -> None:
    modules = imported("--version")
    assert not {"lark", "jinja2", "jsonschema", "grpo_dsl.api", "grpo_dsl.plan"} & modules


def test_planning_needs_no_runtime_either() -> None:
    assert runtime_modules(imported("plan", str(FULL), "--explain")) == []


def test_a_verb_that_needs_the_clients_loads_them() -> None:
    assert "grpo_dsl.clients.cache" in runtime_modules(imported("cache", "info"))
