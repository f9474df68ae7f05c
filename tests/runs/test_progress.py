"""The progress display of `grpo run` and `grpo eval`, against the test endpoint.

Off a terminal, one plain line per step: each is compared with the line rebuilt from
the run's event log (calls, cache hits, retries and failures counted up to that
step's end, the USD of those calls); only the ETA's number is left free. On a
terminal, the live display is read from a pseudo-terminal: its last frame shows
every stage's calls as the event log counts them. The ETA counts every stage: it is
not zero while learner calls remain after the rollouts.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.eval_world import HELD_OUT, write_program

from grpo_dsl.cli import main
from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.runs.directory import read_events
from grpo_dsl.runs.progress import Progress, format_duration
from grpo_dsl.runs.session import usage_from_events

FAULTS = {"rate_500": 0.08, "seed": 11}
"""Enough server errors that some calls are retried (the retries are counted, not assumed)."""

ETA = r"eta (?:\d+s|\d+m\d\ds|\?)"


def tally(program: Path, events: list[dict[str, Any]], tmp: Path) -> str:
    """The totals part of a progress line, counted from `events`."""
    log = tmp / "prefix.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    usd = usage_from_events(load_plan(program), log).total_usd
    kinds = Counter(e["event"] for e in events)
    cached = sum(1 for e in events if e["event"] == "call" and e["cached"])
    calls = kinds["call"] + kinds["llm_call_failed"]
    return f"{calls} calls ({cached} cached, {kinds['llm_retry']} retries, {kinds['llm_call_failed']} failed) · ${usd:.4f}"


def test_a_run_off_a_terminal_prints_one_exact_line_per_step(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world", faults=FAULTS)
    program = write_program(tmp_path, endpoint)
    stream = io.StringIO()
    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=stream)
    assert result.status == "completed"

    events = read_events(result.run_dir / "events.jsonl")
    assert any(e["event"] == "llm_retry" for e in events), "the faults caused no retry"
    expected = []
    for index, event in enumerate(events):
        if event["event"] == "step_started":
            expected.append(re.escape(f"step {event['step']}/3: {len(event['questions'])} questions x 4 rollouts"))
        if event["event"] == "step_completed":
            o = event
            message = (
                f"reward {o['mean_reward']:.3f}, kept {o['kept']}/{o['groups']} groups, {o['applied']} ops applied, "
                f"{o['rejected']} rejected, library {o['library_size']}"
            )
            expected.append(re.escape(f"step {o['step']}/3: {message} · {tally(program, events[:index], tmp_path)} · ") + ETA)
        if event["event"] == "reestimate":
            expected.append(r"after step 1 the run is expected to take .*")
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(expected) == 7
    for line, pattern in zip(lines, expected):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert lines[-1].endswith("eta 0s")
    assert "\x1b" not in stream.getvalue()


def test_grpo_eval_off_a_terminal_prints_a_line_per_library(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint, compare="[none]")
    assert main(["eval", str(program), "--runs", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs" / "date_eval").iterdir()
    events = read_events(run_dir / "events.jsonl")
    lines = capsys.readouterr().err.splitlines()
    samples = HELD_OUT * 4
    assert lines[:3] == [
        f"evaluation run: {run_dir}",
        f"none: {HELD_OUT} questions x 4 samples",
        f"library none: {samples} of {samples} samples scored · {tally(program, events, tmp_path)} · eta 0s",
    ]


def screen_text(raw: bytes) -> str:
    """What a terminal shows of `raw`, roughly: control sequences removed."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", raw.decode("utf-8", errors="replace"))


def run_under_a_terminal(arguments: list[str], cwd: Path) -> tuple[int, str]:
    """Run `grpo ARGUMENTS` with a pseudo-terminal as its standard output and error."""
    status, raw = raw_under_a_terminal(arguments, cwd)
    return status, screen_text(raw)


def raw_under_a_terminal(arguments: list[str], cwd: Path, environ: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run `grpo ARGUMENTS` on a pseudo-terminal (`NO_COLOR` unset unless `environ` sets
    it): the exit status and every byte written, control sequences included."""
    controller, terminal = pty.openpty()
    environment = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    environment.pop("NO_COLOR", None)
    environment.update(environ or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "grpo_dsl.cli", *arguments], cwd=cwd, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=environment
    )
    os.close(terminal)
    output = bytearray()
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError(f"no output for 120 s:\n{screen_text(bytes(output))[-2000:]}")
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        output.extend(chunk)
    os.close(controller)
    return process.wait(timeout=60), bytes(output)


def last_frame(screen: str, title: str) -> dict[str, list[str]]:
    """The rows of the last frame of the live display whose head starts with `title`."""
    frame = screen[screen.rindex(title) :].splitlines()
    rows = {}
    for line in frame[1:]:
        cells = line.split()
        if cells and cells[0] == "reward":
            rows["reward"] = cells
            break
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_live_display_on_a_terminal(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world", faults=FAULTS)
    program = write_program(tmp_path, endpoint)
    status, screen = run_under_a_terminal(["run", str(program), "--runs", str(tmp_path / "runs")], tmp_path)
    assert status == 0, screen[-3000:]
    (run_dir,) = (tmp_path / "runs" / "date_lessons").iterdir()
    events = read_events(run_dir / "events.jsonl")

    rows = last_frame(screen, "run date_lessons · step 3/3")
    assert rows["stage"] == ["done/expected", "cached", "retries", "failed"]
    for stage in ("rollout", "summary", "advantage", "consolidate"):
        of_stage = [e for e in events if e.get("stage") == stage]
        done = sum(e["event"] in ("call", "llm_call_failed") for e in of_stage)
        counts = [sum(e["event"] == kind for e in of_stage) for kind in ("llm_retry", "llm_call_failed")]
        assert rows[stage] == [f"{done}/{done}", "0", str(counts[0]), str(counts[1])], (stage, rows[stage])
    assert rows["rollout"][0] == "48/48"
    footer = " ".join(rows["reward"])
    last = [e for e in events if e["event"] == "step_completed"][-1]
    assert footer == f"reward {last['mean_reward']:.3f} · {tally(program, events, tmp_path)} · eta 0s"
    assert "step 1/3: reward" in screen and "step 3/3: reward" in screen


def test_grpo_eval_on_a_terminal_draws_its_progress(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint, compare="[none]")
    status, screen = run_under_a_terminal(["eval", str(program), "--runs", str(tmp_path / "runs")], tmp_path)
    assert status == 0, screen[-3000:]
    rows = last_frame(screen, "eval date_eval · library none")
    assert rows["evaluate"] == [f"{HELD_OUT * 4}/{HELD_OUT * 4}", "0", "0", "0"]
    (run_dir,) = (tmp_path / "runs" / "date_eval").iterdir()
    rewards = [json.loads(line)["reward"] for line in (run_dir / "results.jsonl").read_text().splitlines()]
    events = read_events(run_dir / "events.jsonl")
    assert " ".join(rows["reward"]) == f"reward {sum(rewards) / len(rewards):.3f} · {tally(program, events, tmp_path)} · eta 0s"


SGR = re.compile(rb"\x1b\[[0-9;]*m")
"""A control sequence that sets colour or style."""


@pytest.mark.parametrize(
    ("options", "environ", "styled"),
    [
        ([], {}, True),
        (["--color", "never"], {}, False),
        ([], {"NO_COLOR": "1"}, False),
        (["--color", "always"], {"NO_COLOR": "1"}, True),
    ],
)
def test_the_live_display_follows_color_and_no_color(
    endpoint: Endpoint, tmp_path: Path, options: list[str], environ: dict[str, str], styled: bool
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint, compare="[none]")
    status, raw = raw_under_a_terminal(["eval", str(program), "--runs", str(tmp_path / "runs"), *options], tmp_path, environ)
    screen = screen_text(raw)
    assert status == 0, screen[-3000:]
    assert last_frame(screen, "eval date_eval · library none")["evaluate"] == [f"{HELD_OUT * 4}/{HELD_OUT * 4}", "0", "0", "0"]
    assert bool(SGR.search(raw)) == styled, raw[-2000:]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_counts_the_learner_calls_left_after_the_rollouts() -> None:
    clock = Clock()
    progress = Progress(None, clock=clock)
    estimate = {
        "stages": [
            {"stage": "rollout", "expected": {"calls": 8, "prompt_tokens": 800, "completion_tokens": 0}},
            {"stage": "summary", "expected": {"calls": 8, "prompt_tokens": 1600, "completion_tokens": 0}},
            {"stage": "consolidate", "expected": {"calls": 2, "prompt_tokens": 800, "completion_tokens": 0}},
        ]
    }
    progress.expect(estimate, units=2)
    progress.step_started(1, 2, 2, 2)
    for _ in range(4):
        clock.now += 1.0
        progress.event("call", {"stage": "rollout", "cached": False})
    # step 1's rollouts are done: its summaries (4 x 200 tokens) and consolidation (400),
    # then step 2 (400 + 800 + 400), remain, at 100 tokens a second
    assert progress.eta() == pytest.approx((800 + 400 + 1600) / 100)
    progress.event("llm_retry", {"stage": "summary"})
    assert progress.stages["summary"].retries == 1
    for _ in range(4):
        progress.event("call", {"stage": "summary", "cached": True})
    progress.event("call", {"stage": "consolidate", "cached": False})
    progress.step_finished("done")
    assert progress.eta() == pytest.approx(4 * (400 + 800 + 400) / 1600)
    progress.step_started(2, 2, 2, 2)
    for stage, calls in (("rollout", 4), ("summary", 4), ("consolidate", 1)):
        for _ in range(calls):
            progress.event("call", {"stage": stage, "cached": False})
    progress.step_finished("done")
    assert progress.eta() == 0


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (0, 42.4, 185, 7620)] == ["0s", "42s", "3m05s", "2h07m"]
