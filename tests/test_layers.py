"""The import contracts of `[tool.importlinter]` in pyproject.toml: the package keeps them, planted imports break them.

The contracts are checked by import-linter in a subprocess. The planted imports go
into a copy of the package under `tmp_path`, found first on `PYTHONPATH`; the real
package is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = ROOT / "grpo_dsl"
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


CONTRACTS = _contracts()
NAMES = {key: contract["name"] for key, contract in CONTRACTS.items()}


def lint(config: Path, search_path: Path) -> tuple[int, str]:
    """Run lint-imports with `config`, `grpo_dsl` being the one under `search_path`."""
    result = subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(config)],
        cwd=search_path,
        env={**os.environ, "PYTHONPATH": str(search_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def statuses(output: str) -> dict[str, str]:
    """Each contract's KEPT or BROKEN, from the summary lines of the output."""
    found = {}
    for key, name in NAMES.items():
        lines = [line for line in output.splitlines() if line.startswith(f"{name} ")]
        assert len(lines) == 1, f"no single summary line for {name!r} in:\n{output}"
        found[key] = lines[0].removeprefix(f"{name} ").strip()
    return found


def subpackages() -> set[str]:
    return {f"grpo_dsl.{path.name}" for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}


def top_level_modules() -> set[str]:
    return {f"grpo_dsl.{path.stem}" for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}


def test_the_contracts_are_the_ones_described() -> None:
    assert list(CONTRACTS) == ["layers", "lark", "openai", "mcp", "root"]
    assert CONTRACTS["layers"]["type"] == "layers"
    assert set(CONTRACTS["layers"]["layers"]) == subpackages(), "every subpackage sits in exactly one layer"
    assert len(CONTRACTS["layers"]["layers"]) == len(subpackages())
    for key, owner in [("lark", "grpo_dsl.language"), ("openai", "grpo_dsl.clients"), ("mcp", "grpo_dsl.rollout")]:
        contract = CONTRACTS[key]
        assert contract["type"] == "forbidden"
        assert contract["forbidden_modules"] == [key]
        assert str(contract["allow_indirect_imports"]).lower() == "true"
        assert set(contract["source_modules"]) == (subpackages() | top_level_modules()) - {owner}
    root = CONTRACTS["root"]
    assert (root["type"], root["source_modules"], root["forbidden_modules"]) == ("forbidden", ["grpo_dsl"], ["lark", "openai"])
    assert str(root["as_packages"]).lower() == "false"


def test_the_package_keeps_every_contract() -> None:
    code, output = lint(PYPROJECT, ROOT)
    assert statuses(output) == dict.fromkeys(NAMES, "KEPT"), output
    assert f"Contracts: {len(NAMES)} kept, 0 broken." in output, output
    assert code == 0, output


class Plant(NamedTuple):
    contract: str
    path: str
    source: str
    violation: str


PLANTS = [
    Plant("layers", "core/planted.py", "import grpo_dsl.cli\n", "grpo_dsl.core.planted -> grpo_dsl.cli"),
    Plant("layers", "language/planted.py", "from grpo_dsl.plan import compile\n", "grpo_dsl.language.planted -> grpo_dsl.plan"),
    Plant("openai", "plan/planted.py", "import openai\n", "grpo_dsl.plan.planted -> openai"),
    Plant("lark", "report/planted.py", "def parse() -> None:\n    import lark.lexer\n", "grpo_dsl.report.planted -> lark"),
    Plant("mcp", "evaluation/planted.py", "from mcp import Client\n", "grpo_dsl.evaluation.planted -> mcp"),
    Plant("root", "__init__.py", "\nimport lark\n", "grpo_dsl -> lark"),
]


@pytest.mark.parametrize("plant", PLANTS, ids=[f"{plant.contract}:{plant.path}" for plant in PLANTS])
def test_a_planted_import_breaks_its_contract(tmp_path: Path, plant: Plant) -> None:
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "grpo_dsl", ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "grpo_dsl" / plant.path).open("a", encoding="utf-8") as out:
        out.write(plant.source)
    config = tmp_path / "pyproject.toml"
    shutil.copyfile(PYPROJECT, config)

    code, output = lint(config, copy)

    expected = {key: "BROKEN" if key == plant.contract else "KEPT" for key in NAMES}
    assert statuses(output) == expected, output
    assert f"Contracts: {len(NAMES) - 1} kept, 1 broken." in output, output
    assert plant.violation in output, output
    assert code != 0, output
