"""Emit publishes only what worked: a run that did not complete needs --force, an emptied library
after failures is never published, and the files get the user's umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world

from grpo_dsl.learning.run import start_run
from grpo_dsl.modules import ModuleError, emit_from_run
from grpo_dsl.plan import Plan, load_plan

EMIT = '\nemit date_prompts {\n  library = date_lessons\n  path    = "prompts/dates"\n}\n'


def _program(folder: Path, endpoint: Endpoint, *lines: str) -> tuple[Path, Plan]:
    program = write_world(folder, endpoint.base_url)
    added = "".join(f"  {line}\n" for line in lines)
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 3\n" + added) + EMIT)
    return program, load_plan(program)


def test_a_run_that_did_not_complete_is_published_only_with_force(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from grpo_dsl.cli import main

    endpoint.configure(script="support.worlds:date_world")
    program, plan = _program(tmp_path, endpoint, "budget { calls = 50 }")
    run = start_run(plan, "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    assert run.status == "stopped" and run.steps

    assert main(["emit", str(program), "--emit", "date_prompts", "--from", str(run.run_dir)]) == 1
    assert "is `stopped`, not completed, so its library is not published" in capsys.readouterr().err
    assert not (tmp_path / "prompts").exists()

    assert main(["emit", str(program), "--emit", "date_prompts", "--from", str(run.run_dir), "--force"]) == 0
    assert json.loads((tmp_path / "prompts" / "dates" / "index.json").read_text())["versions"]


def test_a_library_emptied_by_failures_never_replaces_one_with_experiences(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    _, plan = _program(tmp_path, endpoint)
    good = start_run(plan, "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    first = emit_from_run(plan, "date_prompts", good.run_dir, base_dir=tmp_path)
    assert first.created and good.library.experiences

    endpoint.configure(script="support.worlds:date_world", faults={"rate_500": 1.0})
    again = tmp_path / "again"
    again.mkdir()
    program, _ = _program(again, endpoint, "max_failures = 1")
    program.write_text(program.read_text().replace("max_retries = 8", "max_retries = 0"))
    failing_plan = load_plan(program)
    failing = start_run(failing_plan, "date_lessons", base_dir=again, runs_root=again / "runs", stream=None)
    assert failing.status == "completed" and not failing.library.experiences and failing.steps[0].failed_rollouts == 16

    with pytest.raises(ModuleError, match=r"the library is empty after 48 failed calls and rollouts, and would replace version 1\.0\.0"):
        emit_from_run(plan, "date_prompts", failing.run_dir, base_dir=tmp_path, force=True)
    versions = json.loads((tmp_path / "prompts" / "dates" / "index.json").read_text())["versions"]
    assert [v["version"] for v in versions] == [first.version]


def test_module_files_and_folders_follow_the_umask(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program, plan = _program(tmp_path, endpoint)
    run = start_run(plan, "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    done = subprocess.run(
        [sys.executable, "-m", "grpo_dsl.cli", "emit", str(program), "--emit", "date_prompts", "--from", str(run.run_dir)],
        capture_output=True, text=True, preexec_fn=lambda: os.umask(0o022),
    )

    assert done.returncode == 0, done.stderr
    module = tmp_path / "prompts" / "dates"
    version = next(p for p in module.iterdir() if p.is_dir())
    assert stat.S_IMODE(version.stat().st_mode) == 0o755
    files = [module / "index.json", *version.iterdir()]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}
