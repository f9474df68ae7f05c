"""One cache for every run, end to end through `grpo`: a rerun in a fresh directory pays
nothing, `--no-cache` pays again, processes may share the cache at once, and
`grpo cache info|prune` report and trim it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.eval_world import learn, write_program

from grpo_dsl.cli import main
from grpo_dsl.clients.cache import CACHE_FILE
from grpo_dsl.runs.directory import read_events


def project(folder: Path, endpoint: Endpoint, questions: int = 12) -> Path:
    folder.mkdir()
    return write_program(folder, endpoint, questions=questions)


def grpo(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    status = main([str(a) for a in args])
    out = capsys.readouterr().out
    assert status == 0, out
    return out


def numbers(evaluation: dict[str, Any]) -> dict[str, Any]:
    """What an evaluation found, without where it ran (each learned library's run directory) and what it paid."""
    libraries = [{key: value for key, value in library.items() if key != "origin"} for library in evaluation["libraries"]]
    return {"libraries": libraries, **{key: evaluation[key] for key in ("comparisons", "metrics", "reward")}}


def run_and_eval(folder: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[Any, dict[str, Any], int, int]:
    """`grpo run` then `grpo eval` of the date world in `folder`: the library, the evaluation
    and the endpoint calls each paid."""
    program = project(folder, endpoint)
    endpoint.reset()
    grpo(capsys, "run", program, "--runs", folder / "runs", *flags)
    run_calls = endpoint.stats()["total"]
    (run_dir,) = (folder / "runs" / "date_lessons").iterdir()
    endpoint.reset()
    evaluation = json.loads(grpo(capsys, "eval", program, "--runs", folder / "runs", "--format", "json", *flags))
    return json.loads((run_dir / "library.json").read_text()), evaluation, run_calls, endpoint.stats()["total"]


def test_the_same_run_and_eval_in_a_fresh_directory_cost_nothing(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    library, evaluation, run_calls, eval_calls = run_and_eval(tmp_path / "first", endpoint, capsys)
    assert run_calls > 0 and eval_calls == 2 * 12 * 4

    again = run_and_eval(tmp_path / "second", endpoint, capsys)
    assert again[2:] == (0, 0), "the rerun is answered from the shared cache"
    assert again[0] == library
    assert numbers(again[1]) == numbers(evaluation)
    assert again[1]["usage"]["total"]["cached_calls"] == eval_calls

    paid = run_and_eval(tmp_path / "third", endpoint, capsys, "--no-cache")
    assert paid[2:] == (run_calls, eval_calls), "--no-cache pays for every call again"
    assert paid[0] == library
    assert numbers(paid[1]) == numbers(evaluation)


def test_an_evaluation_replays_from_its_own_record_after_the_shared_cache_is_pruned(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = project(tmp_path / "p", endpoint)
    program.write_text(program.read_text().replace("compare = [none, date_lessons]", "compare = [none]"))
    evaluation = json.loads(grpo(capsys, "eval", program, "--runs", tmp_path / "runs", "--format", "json"))
    assert endpoint.stats()["total"] == 12 * 4
    grpo(capsys, "cache", "prune", "--older-than", "0s")
    endpoint.reset()

    again = json.loads(grpo(capsys, "eval", "--resume", evaluation["run_dir"], "--format", "json", "--no-cache"))

    assert endpoint.stats()["total"] == 0
    assert numbers(again) == numbers(evaluation)


def test_evaluations_running_at_once_share_the_cache_soundly(endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = write_program(tmp_path, endpoint, questions=40)
    learn(tmp_path, program, endpoint)
    endpoint.configure(script="support.worlds:date_world", faults={"latency_ms": 100})
    command = [sys.executable, "-m", "grpo_dsl.cli", "eval", str(program), "--runs", str(tmp_path / "runs"), "--format", "json"]
    evals = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in evals]

    assert [process.returncode for process in evals] == [0, 0], [err for _, err in outputs]
    windows = []
    for out, _ in outputs:
        events = read_events(Path(json.loads(out)["run_dir"]) / "events.jsonl")
        windows.append((events[0]["time"], events[-1]["time"]))
    (start_a, end_a), (start_b, end_b) = windows
    assert start_a < end_b and start_b < end_a, "the two evaluations ran at the same time"
    with sqlite3.connect(Path(os.environ["GRPO_CACHE_DIR"]) / CACHE_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    endpoint.reset()

    third = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert third.returncode == 0, third.stderr
    assert endpoint.stats()["total"] == 0
    documents = [json.loads(out) for out, _ in outputs] + [json.loads(third.stdout)]
    assert numbers(documents[0]) == numbers(documents[1]) == numbers(documents[2])


def test_cache_info_and_prune(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = project(tmp_path / "p", endpoint)
    assert main(["cache", "info"]) == 0
    assert "no response cache in" in capsys.readouterr().out
    grpo(capsys, "run", program, "--runs", tmp_path / "runs")
    grpo(capsys, "run", program, "--runs", tmp_path / "runs")

    text = grpo(capsys, "cache", "info")
    info = json.loads(grpo(capsys, "cache", "info", "--format", "json"))

    assert f"cache {Path(os.environ['GRPO_CACHE_DIR']) / CACHE_FILE}" in text
    assert "rollout/dates" in text and "learner/dates" in text
    assert info["last_hit_rate"] == 1.0 and info["last_run"]["misses"] == 0
    assert info["entries"] == sum(info["namespaces"].values()) > 0
    assert "(hit rate 100.0 %)" in text
    assert grpo(capsys, "cache", "prune", "--older-than", "30d").startswith(f"removed 0 entries not used for 30d; {info['entries']:,} remain")
    assert grpo(capsys, "cache", "prune", "--older-than", "0s").startswith(f"removed {info['entries']:,} entries")
    assert main(["cache", "prune", "--older-than", "a month"]) == 2
    assert "--older-than takes an age such as 30d" in capsys.readouterr().err
