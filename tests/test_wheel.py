"""The grammar, the schemas and the starter project ship inside the wheel: a parse, and
`grpo init`, `check` and `plan` of the starter, work from an installed wheel alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
import grpo_dsl
from grpo_dsl.language.parser import parse
from grpo_dsl.core.resources import resource_path

site = sys.argv[1]
assert grpo_dsl.__file__.startswith(site), grpo_dsl.__file__
assert str(resource_path("grammars/grpo.lark")).startswith(site), resource_path("grammars/grpo.lark")
program = parse('grpo 1\\nmodel m { name = "x"  price { input = 1 } }\\n')
print(program.declarations[0].name, program.declarations[0].attributes[1].name)

from grpo_dsl.cli import main
assert main(["init", "project", "-q"]) == 0 and main(["check", "-q", "project"]) == 0
assert main(["plan", "project/starter.grpo", "--format", "json"]) == 0
"""


def test_grammar_loads_from_the_installed_wheel(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(CHECKOUT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("grpo_dsl-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    assert (site / "grpo_dsl" / "grammars" / "grpo.lark").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(site)],
        cwd=elsewhere,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("m price\nwrote a starter project"), result.stdout
    assert '"schema": "grpo-plan/1"' in result.stdout
