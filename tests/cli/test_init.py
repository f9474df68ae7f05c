"""`grpo init`: the starter project checks clean for every endpoint, `grpo plan` shows its
cost, and from a fresh copy of the repository it runs against the test endpoint with no
edit but the endpoint's URL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.endpoint import Endpoint

from grpo_dsl.cli import main
from grpo_dsl.cli.init import ENDPOINTS
from grpo_dsl.clients.local import CACHE_ENV

CHECKOUT = Path(__file__).resolve().parents[2]
STARTER_WORLD = "support.starter_world:starter_world"


def grpo(*args: str | Path, cwd: Path, pythonpath: Path = CHECKOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`grpo ARGS` in its own process, in `cwd`, with none of the variables the starter reads
    inherited (they come from `env` or the project's `.env`); the test's own response cache
    (`$GRPO_CACHE_DIR`) is kept, so no test writes to the user's."""
    environment = {k: v for k, v in os.environ.items() if k == CACHE_ENV or not k.startswith(("GRPO_", "OPENAI_", "DEEPSEEK_"))}
    environment.update(env or {}, PYTHONPATH=str(pythonpath), NO_COLOR="1")
    command = [sys.executable, "-m", "grpo_dsl.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600, check=False)


def fresh_copy(target: Path) -> Path:
    """The files git tracks in this checkout, copied to `target`: what a fresh clone has."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=CHECKOUT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = CHECKOUT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_the_starter_checks_clean_and_plan_shows_its_cost(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "project"), "--endpoint", kind]) == 0
    project = tmp_path / "project"
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        ".env.example",
        ".gitignore",
        "data/heldout.jsonl",
        "data/train.jsonl",
        "rewards.py",
        "starter.grpo",
    ]
    capsys.readouterr()
    assert main(["check", str(project)]) == 0
    assert "1 file: 0 errors, 0 warnings" in capsys.readouterr().err
    assert main(["plan", str(project / "starter.grpo")]) == 0
    shown = capsys.readouterr().out
    assert "estimate for the whole run:" in shown and "    total " in shown
    variables = [line.split("=")[0] for line in (project / ".env.example").read_text().splitlines() if not line.startswith("#")]
    for variable in variables:
        assert f'env("{variable}"' in (project / "starter.grpo").read_text()
    if kind in ("openai", "deepseek"):
        total = next(line for line in shown.splitlines() if line.strip().startswith("total"))
        assert float(total.split()[-1]) > 0, "a hosted model's estimate is in USD"


def test_init_does_not_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    (tmp_path / "rewards.py").write_text("# mine\n")
    assert main(["init", str(tmp_path), "--endpoint", "ollama"]) == 2
    assert "already has" in capsys.readouterr().err
    assert (tmp_path / "rewards.py").read_text() == "# mine\n"
    assert main(["init", str(tmp_path), "--endpoint", "ollama", "--force"]) == 0
    assert "11434" in (tmp_path / "starter.grpo").read_text()


@pytest.mark.slow
def test_from_a_fresh_copy_init_then_run_completes_with_only_the_url_set(tmp_path: Path, endpoint: Endpoint) -> None:
    endpoint.configure(script=STARTER_WORLD, models=["gpt-4o-mini"])
    clone = fresh_copy(tmp_path / "clone")
    imported = subprocess.run(
        [sys.executable, "-c", "import grpo_dsl; print(grpo_dsl.__file__)"],
        env={**os.environ, "PYTHONPATH": str(clone)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(clone)), "the copy's package is the one that runs"

    made = grpo("init", "project", cwd=tmp_path, pythonpath=clone)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "project"
    example = (project / ".env.example").read_text()
    (project / ".env").write_text(example.replace("https://api.openai.com/v1", endpoint.base_url))

    ran = grpo("run", "starter.grpo", cwd=project, pythonpath=clone)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "run completed" in ran.stderr
    (run_dir,) = (project / "runs" / "word_problems").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert (project / "prompts" / "word_problems" / "index.json").is_file()
    stats = endpoint.stats()
    assert stats["models"] == {"gpt-4o-mini": stats["total"]} and stats["total"] > 32


@pytest.mark.slow
def test_a_variable_already_set_wins_over_env_and_a_resumed_run_reads_env_again(tmp_path: Path, endpoint: Endpoint) -> None:
    endpoint.configure(script=STARTER_WORLD)
    assert main(["init", str(tmp_path / "project"), "-q"]) == 0
    project = tmp_path / "project"
    program = project / "starter.grpo"
    program.write_text(program.read_text().replace("usd = 1.0", "calls = 40"))
    (project / ".env").write_text("GRPO_BASE_URL=http://127.0.0.1:9/v1\n")
    set_here = {"GRPO_BASE_URL": endpoint.base_url}
    stopped = grpo("run", program, "--runs", tmp_path / "runs", cwd=tmp_path, env=set_here)
    assert stopped.returncode == 1 and "run stopped" in stopped.stderr, stopped.stderr
    run_dir = stopped.stdout.splitlines()[0]

    (project / ".env").write_text(f"GRPO_BASE_URL={endpoint.base_url}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = grpo("run", "--resume", run_dir, "--budget", "calls=1000", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert "run completed" in resumed.stderr
