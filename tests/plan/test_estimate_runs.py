"""The expected cost of every program of `programs/` against what a run really used.

Each program runs against the test endpoint with the scripted world of
`support/program_world.py`, which counts tokens as characters / 4 like the estimate:
what is measured is everything else, the prompts rendered, the calls made, the
lengths of answers and replies and the growth of the library.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint

from grpo_dsl.evaluation.evaluate import start_evaluation
from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
EXPECTED_WITHIN = 0.25
REESTIMATED_WITHIN = 0.10


@pytest.fixture(scope="module")
def world() -> Iterator[Endpoint]:
    endpoint = Endpoint(script="support.program_world:program_world", faults={"chars_per_token": 4})
    try:
        yield endpoint
    finally:
        endpoint.stop()


def _pointed_at(folder: Path, base_url: str) -> Path:
    """A copy of `programs/` whose models all answer at `base_url`."""
    copy = folder / "programs"
    shutil.copytree(PROGRAMS, copy, ignore=shutil.ignore_patterns("prompts", "runs"))
    for program in copy.glob("*.grpo"):
        text = program.read_text(encoding="utf-8")
        program.write_text(text.replace("model local {\n", f'model local {{\n  base_url = "{base_url}"\n'), encoding="utf-8")
    return copy


def _tokens(count: Mapping[str, Any]) -> int:
    return int(count["prompt_tokens"]) + int(count["completion_tokens"])


def _off_by(estimate: Mapping[str, Any], used: Mapping[str, Any]) -> dict[str, float]:
    return {
        "calls": abs(estimate["calls"] - used["calls"]) / used["calls"],
        "tokens": abs(_tokens(estimate) - _tokens(used)) / _tokens(used),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in PROGRAMS.glob("*.grpo") if "learn " in p.read_text(encoding="utf-8")))
def test_the_expected_cost_is_close_to_what_the_run_used(name: str, world: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPO_BASE_URL", world.base_url)
    folder = _pointed_at(tmp_path, world.base_url)
    plan = load_plan(folder / f"{name}.grpo")
    (learn,) = plan.names("learn")

    run = start_run(plan, learn, base_dir=folder, runs_root=tmp_path / "runs", stream=None)

    assert run.status == "completed", run.message
    used = run.usage["total"]
    assert run.estimate is not None
    off = _off_by(run.estimate, used)
    assert max(off.values()) <= EXPECTED_WITHIN, (off, run.estimate, used)
    if len(run.steps) > 1:
        assert run.reestimate is not None
        off = _off_by(run.reestimate, used)
        assert max(off.values()) <= REESTIMATED_WITHIN, (off, run.reestimate, used)

    (evaluate,) = plan.names("evaluate")
    evaluation = start_evaluation(plan, evaluate, base_dir=folder, runs_root=tmp_path / "runs")
    assert evaluation.status == "completed", evaluation.message
    expected = plan.evaluate(evaluate).estimate["total"]["expected"]
    off = _off_by(expected, evaluation.usage["total"])
    assert max(off.values()) <= EXPECTED_WITHIN, (off, expected, evaluation.usage["total"])
