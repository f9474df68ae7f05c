"""Runs that never lie: an unreachable endpoint, failing calls and failing rewards fail the
run loudly (exit 1, the counts by cause), and a failed run publishes nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world
from support.worlds import ABOUT_AN_ATTEMPT

from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.runs.directory import read_events

EMIT = """
emit date_prompts {
  library = date_lessons
  path    = "prompts/dates"
}
"""


def grpo(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grpo_dsl.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _with(program: Path, *lines: str, emit: bool = False) -> Path:
    """The program with `lines` added to its learn block (and an emit block), its failing calls retried once."""
    added = "".join(f"  {line}\n" for line in lines)
    text = program.read_text().replace("  seed       = 3\n", "  seed       = 3\n" + added).replace("max_retries = 8", "max_retries = 1")
    program.write_text(text + (EMIT if emit else ""))
    return program


def _run_dir(folder: Path) -> Path:
    (run_dir,) = (folder / "runs" / "date_lessons").iterdir()
    return run_dir


def test_an_unreachable_endpoint_fails_in_seconds_saying_why(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    program = _with(write_world(tmp_path, url), emit=True)

    done = grpo("run", program, "--runs", tmp_path / "runs")

    assert done.returncode == 1, done.stderr
    assert f"connection refused at {url}" in done.stderr and "model `world`" in done.stderr
    assert "Traceback" not in done.stderr
    assert "run failed" in done.stderr
    assert json.loads((_run_dir(tmp_path) / "run.json").read_text())["status"] == "failed"
    assert not (tmp_path / "prompts").exists()
    # it fails at the preflight, before any step and without retrying (how fast is bench_client's concern)
    events = [json.loads(line)["event"] for line in (_run_dir(tmp_path) / "events.jsonl").read_text().splitlines()]
    assert "step_started" not in events and "llm_retry" not in events and "preflight_passed" not in events


def test_a_model_no_block_uses_is_neither_checked_nor_called(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    program = write_world(tmp_path, endpoint.base_url, questions=4)
    program.write_text(
        program.read_text(encoding="utf-8") + f'\nmodel spare {{\n  base_url = "{unreachable}"\n  name     = "spare"\n}}\n',
        encoding="utf-8",
    )

    done = grpo("run", program, "--runs", tmp_path / "runs")

    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (_run_dir(tmp_path) / "events.jsonl").read_text().splitlines()]
    assert [e["models"] for e in events if e["event"] == "preflight_passed"] == [["world"]]


def test_a_step_with_half_its_rollouts_failing_stops_the_run_and_publishes_nothing(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:half_failing_world")
    program = _with(write_world(tmp_path, endpoint.base_url, questions=8, batch_size=8), emit=True)

    done = grpo("run", program, "--runs", tmp_path / "runs")

    assert done.returncode == 1, done.stderr
    assert "step 1:" in done.stderr and "rollouts failed" in done.stderr and "more than max_failures = 10%" in done.stderr
    assert "x HTTP 500: scripted failure" in done.stderr
    assert "grpo run --resume" in done.stderr and "Traceback" not in done.stderr
    run_dir = _run_dir(tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not (run_dir / "steps" / "0001" / "library.json").exists()
    assert not (tmp_path / "prompts").exists()
    assert endpoint.stats()["outcomes"]["ok"] < 32, "the step stopped once it could no longer succeed"


def test_failed_rollouts_have_no_reward_and_stay_out_of_their_group(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:half_failing_world")
    program = _with(write_world(tmp_path, endpoint.base_url, questions=8, batch_size=8), "max_failures = 0.6")

    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed"
    (outcome,) = result.steps
    assert outcome.failed_rollouts == 16
    groups = json.loads((result.run_dir / "steps/0001/rewards.json").read_text())
    failed = [g for g in groups if g["skip_reason"] == "every rollout failed"]
    assert len(failed) == 4 and all(g["rewards"] == [None] * 4 for g in failed)
    scored = [r for g in groups for r in g["rewards"] if r is not None]
    assert outcome.mean_reward == pytest.approx(sum(scored) / len(scored))


REWARDS = {
    "raises": ("def reward(output, row):\n    raise ValueError('no date in ' + output)\n", "ValueError: no date in"),
    "nan": ("def reward(output, row):\n    return float('nan')\n", "`reward` returned float nan, expected a finite number"),
    "infinity": ("def reward(output, row):\n    return float('inf')\n", "`reward` returned float inf, expected a finite number"),
    "text": ("def reward(output, row):\n    return 'right'\n", "`reward` returned str 'right', expected a finite number"),
    "missing": ("def other(output, row):\n    return 1.0\n", "rewards.py has no function `reward`"),
}


@pytest.mark.parametrize("kind", sorted(REWARDS))
def test_a_python_reward_that_fails_fails_the_run(kind: str, endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    code, cause = REWARDS[kind]
    (tmp_path / "rewards.py").write_text(code)
    program = write_world(tmp_path, endpoint.base_url, questions=4, batch_size=4, group_size=2)
    program.write_text(program.read_text().replace("reward correct = exact(strip(output), answer)", 'reward correct = python("rewards.py:reward")'))

    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "failed"
    assert "rollouts failed" in (result.message or "") and f"python reward rewards.py:reward: {cause}" in (result.message or "")
    assert any(e["event"] == "reward_failed" for e in read_events(result.run_dir / "events.jsonl"))


def test_learner_replies_cut_at_max_tokens_are_rejected_and_recorded(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:truncating_world")
    program = _with(write_world(tmp_path, endpoint.base_url, questions=4, batch_size=4), "summarize  = false")

    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed"
    assert result.library.experiences == ()
    truncated = [e for e in read_events(result.run_dir / "events.jsonl") if e["event"] == "learner_reply_truncated"]
    assert truncated and all(e["stage"] == "contrast" for e in truncated)
    proposals = json.loads((result.run_dir / "steps/0001/proposals.json").read_text())
    assert {p["error"] for p in proposals} == {"the learner's reply stopped at max_tokens"}


def test_a_json_reply_cut_at_max_tokens_is_never_parsed_as_whole(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:truncating_world")

    result = start_run(load_plan(write_world(tmp_path, endpoint.base_url, questions=4, batch_size=4)), "date_lessons",
                       base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.library.experiences == ()
    malformed = [e for e in read_events(result.run_dir / "events.jsonl") if e["event"] == "learner_reply_malformed"]
    assert malformed and all("stopped at max_tokens" in e["error"] for e in malformed)


def test_lessons_are_stored_as_direct_statements(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:preamble_world")
    program = write_world(tmp_path, endpoint.base_url, questions=4, batch_size=4)

    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert [e.text for e in result.library.experiences] == ["The date must be written as YYYY-MM-DD."]
    rejected = [e for e in read_events(result.run_dir / "events.jsonl") if e["event"] == "operation_rejected"]
    assert rejected and all(e["op"]["text"] == ABOUT_AN_ATTEMPT for e in rejected)
    assert all("not a general rule" in e["reason"] for e in rejected)


JUDGED = '''
reward formatted {
  judge  = world
  rubric = "Score 1 when {{ output }} is a date written YYYY-MM-DD for day {{ day }}, else 0."
}
'''


def test_without_ground_truth_no_judge_or_learner_prompt_shows_the_answer(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:judged_world")
    program = write_world(tmp_path, endpoint.base_url, questions=4, batch_size=4)
    text = program.read_text().replace("reward correct = exact(strip(output), answer)", JUDGED).replace("reward     = correct", "reward     = formatted")
    program.write_text(text.replace("  seed       = 3\n", "  seed       = 3\n  ground_truth = false\n"))

    result = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert result.status == "completed"
    prompts = [m["content"] for r in endpoint.stats()["requests"] for m in r["body"]["messages"] if m.get("content")]
    judged = [p for p in prompts if p.startswith("You are grading one answer")]
    assert judged and all("for day " in p and "{{" not in p for p in judged), "the rubric is rendered with the row"
    assert all("- day:" in p and "- answer:" not in p for p in judged)
    learner = [p for p in prompts if p.startswith(("You are reviewing", "Several attempts"))]
    assert learner and not [p for p in learner if "reference answer" in p.lower()]


def test_a_judge_rubric_that_reads_the_answer_without_ground_truth_is_an_error(tmp_path: Path) -> None:
    program = write_world(tmp_path, "http://127.0.0.1:9/v1")
    rubric = JUDGED.replace("for day {{ day }}", "equal to {{ answer }}")
    text = program.read_text().replace("reward correct = exact(strip(output), answer)", rubric).replace("reward     = correct", "reward     = formatted")
    program.write_text(text.replace("  seed       = 3\n", "  seed       = 3\n  ground_truth = false\n"))

    done = grpo("check", program)

    assert done.returncode == 1
    assert "error[E0502]" in done.stdout and "reads the answer field `answer`" in done.stdout


def test_a_stopped_run_goes_on_with_a_larger_budget(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = _with(write_world(tmp_path, endpoint.base_url), "budget { calls = 50 }")
    stopped = grpo("run", program, "--runs", tmp_path / "runs")
    assert stopped.returncode == 1 and "calls budget would be exceeded" in stopped.stderr
    run_dir = _run_dir(tmp_path)

    same = grpo("run", "--resume", run_dir)
    assert same.returncode == 1 and "run stopped" in same.stderr
    resumed = grpo("run", "--resume", run_dir, "--budget", "calls=1000")

    assert resumed.returncode == 0, resumed.stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["budget"] == {"calls": 1000}
    bodies = [entry["sha256"] for entry in endpoint.ledger()]
    assert len(bodies) == len(set(bodies)), "nothing answered before the stop was paid for again"


def test_a_budget_for_a_new_run_or_of_another_kind_is_a_usage_error(tmp_path: Path) -> None:
    assert grpo("run", "x.grpo", "--budget", "usd=1").returncode == 2
    done = grpo("run", "--resume", tmp_path, "--budget", "dollars=5")
    assert done.returncode == 2 and "--budget takes usd=N, tokens=N or calls=N" in done.stderr
