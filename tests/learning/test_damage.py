"""Run directories that are busy, edited, damaged or on a full disk: a message and exit 1,
never a traceback, a second run or half a line."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world

from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.runs.directory import read_events


def grpo(*args: str | Path, limit_file_size: int | None = None) -> subprocess.CompletedProcess[str]:
    """`grpo ARGS` in a child process; with `limit_file_size`, no file it writes may grow past that many bytes."""

    def limited() -> None:
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "grpo_dsl.cli", *map(str, args)], capture_output=True, text=True, timeout=300, preexec_fn=limited
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Endpoint]]:
    """A completed three-step run of the date world, and its endpoint (left running)."""
    endpoint = Endpoint(script="support.worlds:date_world")
    folder = tmp_path_factory.mktemp("finished")
    program = write_world(folder, endpoint.base_url)
    result = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert result.status == "completed"
    try:
        yield result.run_dir, endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def copy(finished: tuple[Path, Endpoint], tmp_path: Path) -> Path:
    """A copy of the finished run directory, to damage."""
    run_dir, _ = finished
    target = tmp_path / "runs" / "date_lessons" / run_dir.name
    shutil.copytree(run_dir, target)
    return target


def _refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


DAMAGE: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "plan.json not JSON": (lambda d: (d / "plan.json").write_text("{ not json"), ("plan.json cannot be read", "a plan must be JSON")),
    "run.json not JSON": (lambda d: (d / "run.json").write_text("[1, 2"), ("run.json cannot be read (not JSON",)),
    "run.json without its learn": (
        lambda d: (d / "run.json").write_text(json.dumps({k: v for k, v in json.loads((d / "run.json").read_text()).items() if k != "learn"})),
        ("run.json is damaged: it has no `learn`",),
    ),
    "a step's library not JSON": (
        lambda d: (d / "steps" / "0003" / "library.json").write_text('{"experiences": ['),
        ("steps/0003/library.json cannot be read", "delete", "to run that step again"),
    ),
    "a step's library not a library": (
        lambda d: (d / "steps" / "0003" / "library.json").write_text('{"experiences": 7}'),
        ("steps/0003/library.json is damaged",),
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_run_is_refused_with_the_file_named(damage: str, copy: Path) -> None:
    harm, words = DAMAGE[damage]
    harm(copy)
    _refused(grpo("run", "--resume", copy), *words)


def test_an_edited_plan_is_refused(copy: Path) -> None:
    plan = json.loads((copy / "plan.json").read_text())
    plan["learns"]["date_lessons"]["group_size"] = 8
    (copy / "plan.json").write_text(json.dumps(plan))
    _refused(grpo("run", "--resume", copy), "plan.json was changed after the run started", "start a new run")


def test_an_event_log_with_bytes_that_are_not_utf8_still_resumes(copy: Path) -> None:
    with (copy / "events.jsonl").open("ab") as log:
        log.write(b'{"event": "call", "stage": "rollout", "note": "\xff\xfe"}\n')
    done = grpo("run", "--resume", copy)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_a_completed_run_with_a_damaged_library_writes_it_again(copy: Path) -> None:
    (copy / "library.json").write_text('{"experiences": [')
    done = grpo("run", "--resume", copy)
    assert done.returncode == 0, done.stderr
    assert "library.json was damaged; it is written again from step 3" in done.stderr
    assert json.loads((copy / "library.json").read_text()) == json.loads((copy / "steps" / "0003" / "library.json").read_text())


def test_two_resumptions_of_one_run_never_run_together(tmp_path: Path) -> None:
    endpoint = Endpoint(script="support.worlds:date_world", faults={"latency_ms": 100})
    try:
        program = write_world(tmp_path, endpoint.base_url)
        first = subprocess.Popen([sys.executable, "-m", "grpo_dsl.cli", "run", str(program), "--runs", str(tmp_path / "runs")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert first.stdout is not None
        run_dir = Path(first.stdout.readline().strip())
        while not read_events(run_dir / "events.jsonl"):
            time.sleep(0.01)

        second = grpo("run", "--resume", run_dir)

        _refused(second, f"{run_dir} is in use by process {first.pid}", "wait for it to end")
        first.communicate(timeout=300)
        assert first.returncode == 0
        events = read_events(run_dir / "events.jsonl")
        assert [e["event"] for e in events].count("run_started") == 1
        assert not [e for e in events if e["event"] in ("run_resumed", "preflight_passed") and e is not events[1]]
        bodies = [entry["sha256"] for entry in endpoint.ledger()]
        assert len(bodies) == len(set(bodies)), "nothing was asked twice"
    finally:
        endpoint.stop()


def test_a_full_disk_during_a_run_fails_it_cleanly(tmp_path: Path) -> None:
    endpoint = Endpoint(script="support.worlds:date_world")
    try:
        program = write_world(tmp_path, endpoint.base_url)
        done = grpo("run", program, "--runs", tmp_path / "runs", limit_file_size=12_000)
    finally:
        endpoint.stop()
    _refused(done, "run failed", "cannot write", "File too large")
    (run_dir,) = (tmp_path / "runs" / "date_lessons").iterdir()
    lines = (run_dir / "events.jsonl").read_bytes().splitlines()
    assert all(json.loads(line) for line in lines), "no half line"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_a_full_disk_during_emit_is_a_message(finished: tuple[Path, Endpoint], tmp_path: Path) -> None:
    run_dir, _ = finished
    program = run_dir.parents[2] / "world.grpo"
    target = tmp_path / "world.grpo"
    target.write_text(program.read_text() + '\nemit date_prompts {\n  library = date_lessons\n  path    = "prompts/dates"\n}\n')
    for name in ("dates.jsonl",):
        shutil.copy(run_dir.parents[2] / name, tmp_path / name)

    done = grpo("emit", target, "--emit", "date_prompts", "--from", run_dir, limit_file_size=300)

    _refused(done, "cannot write the module prompts/dates", "File too large")
