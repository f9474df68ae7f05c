"""Start-up: `grpo --version`, `check` and `fmt` load nothing of the runtime, and no HTTP
client: `aiohttp` comes when a command builds its client to call a model, `openai` only
with the client of a model that sends batch jobs. A test of imports, not of time
(`benchmarks/bench_startup.py` measures the time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
RUNTIME = ("clients", "runs", "rewards", "rollout", "modules", "evaluation", "learning", "report", "plan", "lsp")
HTTP_CLIENTS = ("openai", "aiohttp", "httpx")


def imported_by(*argv: str) -> set[str]:
    """The modules `python -X importtime -m grpo_dsl.cli ARGV` imports, from its report."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "grpo_dsl.cli", *argv], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no -X importtime report"
    return set(lines[1:])


def http_clients(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HTTP_CLIENTS}


def test_version_imports_no_http_client_nor_the_language() -> None:
    modules = imported_by("--version")
    assert "grpo_dsl.cli.main" in modules
    assert not {m for m in modules if m.split(".")[0] in (*HTTP_CLIENTS, "lark", "jinja2", "jsonschema")}
    assert not {m for m in modules if m.startswith(("grpo_dsl.language", "grpo_dsl.api", "grpo_dsl.plan"))}


@pytest.mark.parametrize("argv", [("check", str(PROGRAMS)), ("fmt", "--check", str(PROGRAMS / "math.grpo"))])
def test_check_and_fmt_import_nothing_of_the_runtime(argv: tuple[str, ...]) -> None:
    modules = imported_by(*argv)
    assert "grpo_dsl.language.checks" in modules
    assert not http_clients(modules)
    assert not {m for m in modules if m.startswith("grpo_dsl.") and m.split(".")[1] in RUNTIME}


def test_plan_compiles_without_an_http_client() -> None:
    modules = imported_by("plan", str(PROGRAMS / "math.grpo"))
    assert "grpo_dsl.plan.compiler" in modules
    assert not http_clients(modules) and "grpo_dsl.clients.stack" not in modules


def test_cache_info_reads_the_cache_without_the_client_stack() -> None:
    modules = imported_by("cache", "info")
    assert "grpo_dsl.clients.cache" in modules
    assert not http_clients(modules) and "grpo_dsl.clients.stack" not in modules


def test_a_command_imports_its_http_client_when_it_builds_its_client() -> None:
    code = (
        "import sys; from grpo_dsl.cli import runtime, ablation;"
        "assert 'aiohttp' not in sys.modules and 'openai' not in sys.modules;"
        "from grpo_dsl.clients import Usage, build_client;"
        "models = {'m': {'name': 'x', 'base_url': 'http://127.0.0.1:9/v1'}};"
        "build_client(models, usage=Usage(models)); assert 'aiohttp' in sys.modules and 'openai' not in sys.modules;"
        "models = {'m': {'name': 'x', 'base_url': 'http://127.0.0.1:9/v1', 'batch': True}};"
        "build_client(models, usage=Usage(models)); assert 'openai' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
