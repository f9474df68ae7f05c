"""A run killed with SIGKILL at random points resumes to the library of an uninterrupted run,
and pays for no answer it had already received: lessons (the date world), demos (the
demo world) and multi-turn rollouts with a Python tool (the agent world) alike."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.crash import grpo_command, kill_after
from support.agent_world import write_agent_world
from support.learn_world import write_world

from grpo_dsl.runs.directory import read_events

GRACE_S = 0.25
"""On a loaded machine an answer sent this close before a kill may not have reached the
run, and a request the killed run sent may reach the server's handler this long after
the kill (a resumed run has not started by then)."""


@pytest.fixture
def slow_world() -> Iterator[Endpoint]:
    endpoint = Endpoint(script="support.worlds:date_world", faults={"latency_ms": 40})
    try:
        yield endpoint
    finally:
        endpoint.stop()


def _library(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "library.json").read_text())


def _write(kind: str, folder: Path, base_url: str, demos: int) -> tuple[Path, str]:
    """The program of a world (its path) and its learn's name: the date world, or the agent
    world whose rollouts call a Python tool over several turns."""
    if kind == "tools":
        return write_agent_world(folder, base_url, tool="python", questions=16, batch_size=4, group_size=4), "glossary_lessons"
    return write_world(folder, base_url, questions=16, batch_size=4, group_size=4, demos=demos), "date_lessons"


@pytest.mark.parametrize(
    ("script", "kind", "demos"),
    [("worlds:date_world", "lessons", 0), ("worlds:demo_world", "demos", 2), ("agent_world:agent_world", "tools", 0)],
    ids=["lessons", "demos", "tools"],
)
def test_killed_runs_resume_to_the_same_library_and_pay_nothing_twice(
    slow_world: Endpoint, tmp_path: Path, script: str, kind: str, demos: int
) -> None:
    slow_world.configure(script=f"support.{script}", faults={"latency_ms": 40})
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()

    program, learn = _write(kind, straight, slow_world.base_url, demos)
    subprocess.run(grpo_command("run", program, "--runs", straight / "runs"), check=True, capture_output=True)
    (reference_run,) = (straight / "runs" / learn).iterdir()
    reference = slow_world.ledger()
    reference_bodies = [entry["sha256"] for entry in reference]
    assert len(set(reference_bodies)) == len(reference_bodies), "an uninterrupted run asks nothing twice"

    slow_world.reset()
    program, _ = _write(kind, killed, slow_world.base_url, demos)
    rng = random.Random(20261124)
    run_dir: Path | None = None
    kills: list[float] = []
    for _ in range(5):
        args = grpo_command("run", program, "--runs", killed / "runs") if run_dir is None else grpo_command("run", "--resume", run_dir)
        run_dir, killed_at = kill_after(args, run_dir, rng.randint(8, 30))
        if killed_at is not None:
            kills.append(killed_at)
    assert run_dir is not None
    assert len(kills) == 5
    subprocess.run(grpo_command("run", "--resume", run_dir), check=True, capture_output=True)

    assert _library(run_dir) == _library(reference_run)
    assert len(_library(run_dir).get("demos", [])) == demos
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    ledger = slow_world.ledger()
    assert {entry["sha256"] for entry in ledger} == set(reference_bodies)
    answers: dict[str, list[dict[str, float]]] = defaultdict(list)
    for entry in ledger:
        answers[entry["sha256"]].append(entry)
    for body, entries in answers.items():
        first = min(entries, key=lambda e: e["answered_at"])
        for again in entries[1:]:
            assert any(first["answered_at"] > kill - GRACE_S and first["received_at"] < kill + GRACE_S for kill in kills), (
                f"request {body[:12]} was answered at {first['answered_at']:.3f}, "
                f"well before any kill ({kills}), and asked again at {again['received_at']:.3f}"
            )
    steps = [e for e in read_events(run_dir / "events.jsonl") if e["event"] == "step_completed"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]


def test_ctrl_c_stops_cleanly_and_the_run_resumes(slow_world: Endpoint, tmp_path: Path) -> None:
    program = write_world(tmp_path, slow_world.base_url)
    with subprocess.Popen(grpo_command("run", program, "--runs", tmp_path / "runs"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stderr is not None
        run_dir = Path(process.stdout.readline().strip())
        while len(read_events(run_dir / "events.jsonl")) < 30:
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        stderr = process.stderr.read()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"grpo run --resume {run_dir}" in stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert read_events(run_dir / "events.jsonl")[-1]["event"] == "run_interrupted"

    subprocess.run(grpo_command("run", "--resume", run_dir), check=True, capture_output=True)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
