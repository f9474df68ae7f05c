"""A learning run with `batch = true` against the test endpoint's Batch API: jobs finish
after a delay, some requests fail inside them, one job expires; the run ends with the
library of the interactive run. Killed while a job is in flight and resumed, it submits
no job twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.agent_world import write_agent_world
from support.learn_world import write_world

from grpo_dsl.runs.directory import read_events

pytestmark = pytest.mark.slow

WORLD = {"questions": 12, "batch_size": 4, "group_size": 4}
TROUBLE = {"delay": 0.3, "fail_every": 7, "expire": [2]}


def _grpo(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "grpo_dsl.cli", *map(str, args)]


def _learn(folder: Path, endpoint: Endpoint, *model_extra: str) -> Path:
    """Run the date world to its end in `folder`; its run directory."""
    folder.mkdir()
    program = write_world(folder, endpoint.base_url, model_extra="\n  ".join(model_extra), **WORLD)
    done = subprocess.run(_grpo("run", program, "--runs", folder / "runs"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (folder / "runs" / "date_lessons").iterdir()
    return run_dir


def _library(run_dir: Path) -> object:
    return json.loads((run_dir / "library.json").read_text())


@pytest.fixture
def batch_world(endpoint: Endpoint) -> Endpoint:
    endpoint.configure(script="support.worlds:date_world", batch=TROUBLE)
    return endpoint


def test_a_batched_run_learns_the_library_of_the_interactive_run(
    batch_world: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interactive = _learn(tmp_path / "interactive", batch_world)
    ordinary_calls = batch_world.stats()["total"]
    batch_world.reset()
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "other-cache"))

    batched = _learn(tmp_path / "batched", batch_world, "batch = true")

    assert _library(batched) == _library(interactive)
    stats = batch_world.stats()
    events = read_events(batched / "events.jsonl")
    finished = [e for e in events if e["event"] == "batch_finished"]
    assert stats["batches"]["created"] == len(finished)
    assert [e["stage"] for e in finished if e["stage"] == "rollout"] == ["rollout"] * 3, "one job per step's rollouts"
    assert {e["stage"] for e in finished} == {"rollout", "summary", "advantage", "consolidate"}
    assert stats["batches"]["statuses"] == {"completed": len(finished) - 1, "expired": 1}
    missing = sum(e["missing"] for e in finished)
    assert missing > 0 and stats["total"] == missing, "only what the jobs did not answer is asked again, once"
    assert stats["total"] < ordinary_calls
    usage = json.loads((batched / "usage.json").read_text())["total"]
    assert usage["batched_calls"] == usage["calls"] - missing
    interactive_usd = json.loads((interactive / "usage.json").read_text())["total"]["usd"]
    assert usage["usd"] < 0.7 * interactive_usd, "batched calls are priced at half"


def _kill_when_submitted(args: list[str], run_dir: Path | None, submissions: int) -> Path:
    """Start `args` and SIGKILL it once its log records `submissions` more submitted jobs
    than it had, while the last one is still in flight."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        run_dir = run_dir or Path(process.stdout.readline().strip())
        log = run_dir / "events.jsonl"

        def submitted() -> int:
            return sum(e["event"] == "batch_submitted" for e in read_events(log))

        target = submitted() + submissions
        while process.poll() is None and submitted() < target:
            time.sleep(0.005)
        assert process.poll() is None, "the run ended before the kill"
        process.send_signal(signal.SIGKILL)
        process.wait()
    events = read_events(log)
    last = [e for e in events if e["event"] == "batch_submitted"][-1]
    assert not any(e["event"] == "batch_finished" and e.get("batch") == last["batch"] for e in events), "killed while in flight"
    return run_dir


def test_a_run_killed_while_a_job_is_in_flight_resumes_without_submitting_twice(
    batch_world: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interactive = _learn(tmp_path / "interactive", batch_world)
    batch_world.configure(script="support.worlds:date_world", batch={**TROUBLE, "delay": 1.0})
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "other-cache"))
    folder = tmp_path / "killed"
    folder.mkdir()
    program = write_world(folder, batch_world.base_url, model_extra="batch = true", **WORLD)

    run_dir = _kill_when_submitted(_grpo("run", program, "--runs", folder / "runs"), None, 1)
    for submissions in (2, 3):
        run_dir = _kill_when_submitted(_grpo("run", "--resume", run_dir), run_dir, submissions)
    done = subprocess.run(_grpo("run", "--resume", run_dir), capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr
    assert _library(run_dir) == _library(interactive)
    stats = batch_world.stats()["batches"]
    events = read_events(run_dir / "events.jsonl")
    files = [e for e in events if e["event"] == "batch_file"]
    assert stats["repeated_lines"] == 0, "no request was submitted twice"
    assert stats["created"] == len(files) == len({e["file"] for e in files})
    assert sum(e["event"] == "batch_resumed" for e in events) >= 3, "each resumed run waited for the job in flight"


def test_multi_turn_rollouts_with_a_tool_go_turn_by_turn_through_jobs_and_the_shared_cache(
    endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint.configure(script="support.agent_world:agent_world")
    runs: dict[str, Path] = {}
    for name, extra in (("interactive", ""), ("batched", "batch = true")):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / f"{name}-cache"))
        program = write_agent_world(folder, endpoint.base_url, tool="python", questions=8, model_extra=extra)
        done = subprocess.run(_grpo("run", program, "--runs", folder / "runs"), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        (runs[name],) = (folder / "runs" / "glossary_lessons").iterdir()
        if name == "interactive":
            endpoint.reset()

    assert _library(runs["batched"]) == _library(runs["interactive"])
    stats = endpoint.stats()
    assert stats["total"] == 0, "every turn was answered by a job"
    events = read_events(runs["batched"] / "events.jsonl")
    rollout_calls = [e for e in events if e["event"] == "call" and e["stage"] == "rollout"]
    later_turns = [e for e in rollout_calls if not e["sample_key"].endswith("/0")]
    assert later_turns and all(e["batched"] for e in rollout_calls), "a tool result's next turn is its own batched request"
    rollout_jobs = [e for e in events if e["event"] == "batch_finished" and e["stage"] == "rollout"]
    assert len(rollout_jobs) > 2, "each turn of a step's rollouts waits for the job of the turn before"

    endpoint.reset()
    again = tmp_path / "again"
    again.mkdir()
    program = write_agent_world(again, endpoint.base_url, tool="python", questions=8, model_extra="batch = true")
    done = subprocess.run(_grpo("run", program, "--runs", again / "runs"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (rerun,) = (again / "runs" / "glossary_lessons").iterdir()
    assert _library(rerun) == _library(runs["batched"])
    assert endpoint.stats()["total"] == 0 and endpoint.stats()["batches"]["created"] == 0, "the second run costs nothing"
