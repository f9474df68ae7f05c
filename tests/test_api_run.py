"""Running programs from Python: `learn`, `alearn`, `evaluate`, `aevaluate`, `resume`,
against the scripted date world on the test endpoint.

The command line runs through the same functions, so the same run made by `grpo run`
in another process, by `grpo_dsl.learn` and by `grpo_dsl.alearn` inside a running
event loop leaves the same bytes in library.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint
from support.eval_world import write_program
from support.learn_world import write_world
from support.worlds import LESSONS

import grpo_dsl as g
from grpo_dsl.cli import main
from grpo_dsl.language.builtins import RewardError
from grpo_dsl.learning.run import RunResult
from grpo_dsl.rewards.functions import RewardFunctionError, call_reward_function

ROOT = Path(__file__).resolve().parents[1]


def correct(output: str, row: dict[str, Any]) -> bool:
    """The world's reward `exact(strip(output), answer)`, in Python."""
    return output.strip() == row["answer"]


def rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "dates.jsonl").read_text().splitlines()]


def library_bytes(result: RunResult) -> bytes:
    return (result.run_dir / "library.json").read_bytes()


def step_libraries(run_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(run_dir.glob("steps/*/library.json"))]


def events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in found if e["event"] == kind]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`grpo ARGS...` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "grpo_dsl.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


# ------------------------------------------------------------------ the package root


def test_importing_the_package_imports_neither_the_parser_nor_the_http_client() -> None:
    probe = (
        "import sys, grpo_dsl as g\n"
        "print('lark' in sys.modules, 'aiohttp' in sys.modules)\n"
        "g.load\n"
        "print('lark' in sys.modules, 'aiohttp' in sys.modules)\n"
        "g.learn\n"
        "print('lark' in sys.modules, 'aiohttp' in sys.modules)\n"
        "import grpo_dsl.learning.run\n"
        "print('lark' in sys.modules, 'aiohttp' in sys.modules)\n"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120).stdout.split("\n")
    # nothing on import; the parser with `load`; `learn` and even the runtime are light:
    # the HTTP client comes only when a client is built to call a model
    assert found[:4] == ["False False", "True False", "True False", "True False"], found


def test_every_public_name_of_the_root_resolves() -> None:
    for name in g.__all__:
        assert getattr(g, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        g.nothing  # noqa: B018


# ------------------------------------------------------- one run, three ways, one library


def test_the_cli_learn_and_alearn_in_a_running_loop_make_byte_identical_libraries(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)

    done = cli("run", program.name, "--runs", "cli-runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cli_run = Path(tmp_path / done.stdout.split()[0])

    from_python = g.learn(program, runs=tmp_path / "learn-runs")

    async def notebook_cell() -> RunResult:
        asyncio.get_running_loop()  # as in Jupyter: a loop is running when the cell awaits
        return await g.alearn(program, runs=tmp_path / "alearn-runs")

    from_loop = asyncio.run(notebook_cell())

    assert from_python.status == from_loop.status == "completed"
    assert [e.text for e in from_python.library.experiences] == list(LESSONS)
    expected = (cli_run / "library.json").read_bytes()
    assert library_bytes(from_python) == expected
    assert library_bytes(from_loop) == expected
    assert step_libraries(from_python.run_dir) == step_libraries(from_loop.run_dir) == step_libraries(cli_run)
    assert len(step_libraries(cli_run)) == 3
    assert {from_python.run_dir.parent.parent, from_loop.run_dir.parent.parent} == {tmp_path / "learn-runs", tmp_path / "alearn-runs"}


def test_learn_and_evaluate_share_the_response_cache_of_the_cli_and_cache_false_pays_again(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint)

    assert main(["run", str(program), "--runs", str(tmp_path / "cli-runs")]) == 0
    learn_calls = endpoint.stats()["total"]
    assert learn_calls > 0
    cli_run = Path(capsys.readouterr().out.split()[0])

    cached = g.learn(program, runs=tmp_path / "py-runs")
    assert endpoint.stats()["total"] == learn_calls  # every call answered from the cache grpo run filled
    assert library_bytes(cached) == (cli_run / "library.json").read_bytes()

    paid = g.learn(program, runs=tmp_path / "paid-runs", cache=False)
    assert endpoint.stats()["total"] == 2 * learn_calls  # as with --no-cache: every call paid again
    assert library_bytes(paid) == library_bytes(cached)

    assert main(["eval", str(program), "--runs", str(tmp_path / "cli-runs"), "--format", "json"]) == 0
    by_cli = json.loads(capsys.readouterr().out)
    eval_calls = endpoint.stats()["total"] - 2 * learn_calls
    assert eval_calls > 0

    async def cell(cache: bool) -> Any:
        return await g.aevaluate(program, runs=tmp_path / "cli-runs", cache=cache)

    again = asyncio.run(cell(True)).to_json()
    assert endpoint.stats()["total"] == 2 * learn_calls + eval_calls
    paid_again = g.evaluate(program, runs=tmp_path / "cli-runs", cache=False).to_json()
    assert endpoint.stats()["total"] == 2 * learn_calls + 2 * eval_calls
    for document in (again, paid_again):
        assert [lib["metrics"] for lib in document["libraries"]] == [lib["metrics"] for lib in by_cli["libraries"]]


def test_the_blocking_forms_refuse_a_running_loop_and_name_the_async_one(endpoint: Endpoint, tmp_path: Path) -> None:
    program = write_world(tmp_path, endpoint.base_url)

    async def cell() -> None:
        with pytest.raises(g.LoopRunning, match=r"await grpo_dsl\.alearn\(\.\.\.\)"):
            g.learn(program, runs=tmp_path / "runs")
        with pytest.raises(g.LoopRunning, match=r"await grpo_dsl\.aevaluate\(\.\.\.\)"):
            g.evaluate(program, runs=tmp_path / "runs")

    asyncio.run(cell())
    assert not (tmp_path / "runs").exists()
    assert endpoint.stats()["total"] == 0


def test_a_program_can_be_given_as_source_text_or_loaded(endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    monkeypatch.chdir(tmp_path)  # the paths of source text are relative to the working directory

    from_text = g.learn(program.read_text(), runs="text-runs")
    loaded = g.learn(g.load(program), runs="loaded-runs")

    assert library_bytes(from_text) == library_bytes(loaded)
    assert [e.text for e in loaded.library.experiences] == list(LESSONS)


def test_an_unclear_block_is_an_error_before_anything_runs(endpoint: Endpoint, tmp_path: Path) -> None:
    program = write_world(tmp_path, endpoint.base_url)
    with pytest.raises(g.ApiError, match=r"no learn block `other`; the program has: date_lessons"):
        g.learn(program, block="other", runs=tmp_path / "runs")
    with pytest.raises(g.ProgramError):
        g.learn(program.read_text().replace("reward     = correct", "reward     = missing"), runs=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_the_result_emits_the_module_of_its_learn(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint)

    result = g.learn(program, runs=tmp_path / "runs")
    assert result.emits() == ("date_prompts",)
    emitted = result.emit()

    assert emitted.created and emitted.path == tmp_path / "prompts" / "dates"
    module = g.load_module(tmp_path / "prompts" / "dates")
    assert [e.text for e in module.library.experiences] == [e.text for e in result.library.experiences]
    assert result.emit().created is False  # the same library again: no new version


# ------------------------------------------------------------------ datasets as rows


def test_rows_given_as_dicts_learn_what_the_same_rows_in_the_file_learn(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    from_file = g.learn(program, runs=tmp_path / "file-runs")
    given = rows(tmp_path)
    (tmp_path / "dates.jsonl").unlink()  # the program's file is gone: only the rows given count

    from_rows = g.learn(program, runs=tmp_path / "row-runs", datasets={"dates": given})

    assert library_bytes(from_rows) == library_bytes(from_file)
    written = list((tmp_path / "row-runs" / ".data").glob("dates-*.jsonl"))
    assert len(written) == 1
    plan = json.loads((from_rows.run_dir / "plan.json").read_text())
    assert plan["datasets"]["dates"]["source"] == str(written[0].resolve())


def test_only_the_rows_given_are_asked(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    few = [row for row in rows(tmp_path) if row["id"] in {"d1", "d4", "d7", "d10"}]

    result = g.learn(program, runs=tmp_path / "runs", datasets={"dates": few})

    assert result.status == "completed" and len(result.steps) == 1
    (started,) = events(result.run_dir, "step_started")
    assert sorted(started["questions"]) == ["d1", "d10", "d4", "d7"]
    assert endpoint.stats()["total"] > 0


def test_rows_missing_a_field_the_task_reads_are_a_program_error(endpoint: Endpoint, tmp_path: Path) -> None:
    program = write_world(tmp_path, endpoint.base_url)
    broken = [{k: v for k, v in row.items() if k != "year"} for row in rows(tmp_path)]
    with pytest.raises(g.ProgramError) as error:
        g.learn(program, runs=tmp_path / "runs", datasets={"dates": broken})
    assert "year" in str(error.value)


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ({"questions": []}, r"`questions` is not a dataset of the program \(its datasets: dates\)"),
        ({"write_date": []}, r"`write_date` is not a dataset"),
        ({"dates": [["a list"]]}, r"dataset `dates`: row 0 is list, not a dict with text keys"),
        ({"dates": [{"day": object()}]}, r"dataset `dates`: row 0 is not JSON"),
        ({"dates": {"day": 1}}, r"give a file path or a list of dicts, not dict"),
    ],
)
def test_datasets_that_are_not_rows_are_refused(endpoint: Endpoint, tmp_path: Path, datasets: Any, message: str) -> None:
    program = write_world(tmp_path, endpoint.base_url)
    with pytest.raises(g.ApiError, match=message):
        g.learn(program, runs=tmp_path / "runs", datasets=datasets)


def test_a_dataset_can_be_another_file(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    other = tmp_path / "elsewhere" / "more.json"
    other.parent.mkdir()
    other.write_text(json.dumps(rows(tmp_path)[:4]))

    result = g.learn(program, runs=tmp_path / "runs", datasets={"dates": other})

    assert result.status == "completed" and len(result.steps) == 1
    assert json.loads((result.run_dir / "plan.json").read_text())["datasets"]["dates"]["format"] == "json"


# ------------------------------------------------------------------ rewards as functions


def test_a_reward_function_scores_every_rollout_and_learns_what_the_expression_learns(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    expression = g.learn(program, runs=tmp_path / "expression-runs")
    scored: list[str] = []

    def counted(output: str, row: dict[str, Any]) -> bool:
        scored.append(row["id"])
        return correct(output, row)

    function = g.learn(program, runs=tmp_path / "function-runs", rewards={"correct": counted})

    assert library_bytes(function) == library_bytes(expression)
    assert len(scored) == 3 * 4 * 4  # steps x groups x group size
    info = json.loads((function.run_dir / "run.json").read_text())
    assert info["reward_functions"] == {"correct": f"{__name__}.{counted.__qualname__}"}


def test_an_async_reward_function_is_awaited(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)

    async def lenient(output: str, row: dict[str, Any]) -> float:
        await asyncio.sleep(0)
        return 1.0 if row["answer"] in output else 0.0

    result = g.learn(program, runs=tmp_path / "runs", rewards={"correct": lenient})

    assert result.status == "completed"
    assert [s.failed_rollouts for s in result.steps] == [0, 0, 0]


def test_rewards_that_refer_to_a_replaced_reward_use_the_function(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    text = program.read_text().replace("reward     = correct", "reward     = scaled")
    program.write_text(text + "\nreward scaled = correct * 2\n")

    result = g.learn(program, runs=tmp_path / "runs", rewards={"correct": lambda output, row: 0.25})

    assert {s.mean_reward for s in result.steps} == {0.5}  # 2 x the function's 0.25, on every rollout


RAISING_FILE = """
def correct(output, row):
    if row["id"] == "d3":
        raise ValueError("no reward for d3")
    return output.strip() == row["answer"]
"""


def raising(output: str, row: dict[str, Any]) -> bool:
    if row["id"] == "d3":
        raise ValueError("no reward for d3")
    return correct(output, row)


def tolerant_world(folder: Path, endpoint: Endpoint, reward: str | None = None) -> Path:
    """The world with `max_failures = 0.3`, and optionally another `correct` reward."""
    program = write_world(folder, endpoint.base_url)
    text = program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  max_failures = 0.3\n")
    if reward is not None:
        text = text.replace("reward correct = exact(strip(output), answer)", reward)
    program.write_text(text)
    return program


def test_a_reward_function_that_raises_is_a_failure_as_a_file_reward_that_raises_is(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    (tmp_path / "file").mkdir()
    (tmp_path / "function").mkdir()
    (tmp_path / "file" / "rewards.py").write_text(RAISING_FILE)
    by_file = g.learn(tolerant_world(tmp_path / "file", endpoint, 'reward correct = python("rewards.py:correct")'), runs=tmp_path / "file" / "runs")
    by_function = g.learn(tolerant_world(tmp_path / "function", endpoint), runs=tmp_path / "function" / "runs", rewards={"correct": raising})

    assert by_function.status == by_file.status == "completed"
    failed = [(s.step, s.failed_rollouts) for s in by_function.steps]
    assert failed == [(s.step, s.failed_rollouts) for s in by_file.steps]
    assert sum(n for _, n in failed) == 4  # the group of d3, once
    for result in (by_file, by_function):
        errors = events(result.run_dir, "reward_failed")
        assert len(errors) == 4 and {e["question"] for e in errors} == {"d3"}
        assert all("ValueError: no reward for d3" in e["error"] for e in errors)
    assert library_bytes(by_function) == library_bytes(by_file)


def test_a_reward_function_that_always_raises_fails_the_run_with_its_error(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)

    def broken(output: str, row: dict[str, Any]) -> float:
        raise KeyError("score")

    result = g.learn(program, runs=tmp_path / "runs", rewards={"correct": broken})

    assert result.status == "failed"
    assert result.message is not None and "KeyError: 'score'" in result.message and "max_failures" in result.message
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "failed"


def test_a_run_that_fails_in_a_running_loop_leaves_the_loops_other_tasks_alone(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)

    def broken(output: str, row: dict[str, Any]) -> float:
        raise KeyError("score")

    async def notebook_cell() -> tuple[RunResult, list[asyncio.Task[None]]]:
        # The notebook's own work: a task from before the run, and tasks another one
        # starts while the run is going (a failing run settles only its own).
        stop = asyncio.Event()
        before = asyncio.create_task(stop.wait())
        started: list[asyncio.Task[Any]] = []

        async def ticker() -> None:
            while not stop.is_set():
                started.append(asyncio.create_task(stop.wait()))
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        result = await g.alearn(program, runs=tmp_path / "runs", rewards={"correct": broken})
        ended = [task for task in (before, ticking, *started) if task.done()]
        stop.set()
        await asyncio.gather(before, ticking, *started)
        return result, ended

    result, ended_early = asyncio.run(notebook_cell())

    assert result.status == "failed"
    assert ended_early == []


def test_a_reward_function_returning_garbage_is_a_recorded_error(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = tolerant_world(tmp_path, endpoint)

    def garbage(output: str, row: dict[str, Any]) -> Any:
        return "yes" if row["id"] == "d3" else correct(output, row)

    result = g.learn(program, runs=tmp_path / "runs", rewards={"correct": garbage})

    errors = events(result.run_dir, "reward_failed")
    assert len(errors) == 4
    assert all("`garbage` returned str 'yes', expected a finite number" in e["error"] for e in errors)


def test_a_reward_function_for_no_declared_reward_is_refused_before_the_run(endpoint: Endpoint, tmp_path: Path) -> None:
    program = write_world(tmp_path, endpoint.base_url)
    with pytest.raises(RewardFunctionError, match=r"replaces no reward of the program \(its rewards: correct\)"):
        g.learn(program, runs=tmp_path / "runs", rewards={"corect": correct})
    with pytest.raises(RewardFunctionError, match=r"is int, not a function"):
        g.learn(program, runs=tmp_path / "runs", rewards={"correct": 1})  # type: ignore[dict-item]
    assert not (tmp_path / "runs").exists()


def test_a_learn_with_repeats_runs_once_from_python(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    program.write_text(program.read_text().replace("learn date_lessons {\n", "learn date_lessons {\n  repeats    = 2\n"))

    result = g.learn(program, runs=tmp_path / "runs")

    assert (result.status, result.message) == ("completed", None)
    assert result.run_dir.parent == tmp_path / "runs" / "date_lessons"  # a run, not a group of repeats
    assert "kind" not in json.loads((result.run_dir / "run.json").read_text())
    assert [p.name for p in (tmp_path / "runs" / "date_lessons").iterdir()] == [result.run_dir.name]


def test_a_run_with_reward_functions_resumes_only_with_them(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_world(tmp_path, endpoint.base_url)
    result = g.learn(program, runs=tmp_path / "runs", rewards={"correct": correct})

    assert main(["run", "--resume", str(result.run_dir)]) == 1
    assert "started with reward functions given from Python for `correct`, and is resumed with them for no reward" in capsys.readouterr().err
    with pytest.raises(RewardFunctionError, match=r"grpo_dsl\.resume"):
        g.resume(result.run_dir)
    calls = endpoint.stats()["total"]

    resumed = g.resume(result.run_dir, rewards={"correct": correct})

    assert resumed.status == "completed" and resumed.library == result.library
    assert endpoint.stats()["total"] == calls  # every step was done: nothing to pay for
    (tmp_path / "policies.grpo").write_text("grpo 1\n\npolicy add_only {\n  ops = [add]\n}\n")
    policy = f"{tmp_path / 'policies.grpo'}:add_only"
    assert main(["replay", str(result.run_dir), "--policy", policy, "--runs", str(tmp_path / "replays")]) == 1
    assert "scored `correct` with reward functions given from Python" in capsys.readouterr().err
    assert main(["replay", str(result.run_dir), "--policy", policy, "--runs", str(tmp_path / "replays"), "--offline"]) == 0


def test_a_hanging_reward_function_does_not_keep_the_run_waiting(tmp_path: Path) -> None:
    release = threading.Event()

    def hangs(output: str, row: dict[str, Any]) -> float:
        release.wait(60)
        return 1.0

    async def score() -> None:
        with pytest.raises(RewardError, match="stopped after 0.2 s without an answer"):
            await call_reward_function(hangs, "x", {}, 0.2)

    asyncio.run(score())
    release.set()


# ------------------------------------------------------------------ evaluation


def test_aevaluate_in_a_running_loop_gives_the_numbers_of_grpo_eval(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint)
    assert g.learn(program, runs=tmp_path / "runs").status == "completed"

    assert main(["eval", str(program), "--runs", str(tmp_path / "runs"), "--format", "json"]) == 0
    by_cli = json.loads(capsys.readouterr().out)

    async def cell() -> Any:
        return await g.aevaluate(program, runs=tmp_path / "runs")

    by_loop = asyncio.run(cell()).to_json()
    by_function = g.evaluate(program, runs=tmp_path / "runs", rewards={"correct": correct}).to_json()

    assert by_loop["status"] == by_function["status"] == "completed"
    for document in (by_loop, by_function):
        assert [lib["metrics"] for lib in document["libraries"]] == [lib["metrics"] for lib in by_cli["libraries"]]
        assert document["comparisons"] == by_cli["comparisons"]
    assert by_cli["comparisons"][0]["low"] > 0  # the learned library is better: the numbers compared are not empty
    info = json.loads((Path(by_function["run_dir"]) / "run.json").read_text())
    assert info["reward_functions"] == {"correct": f"{__name__}.correct"}


def test_aevaluate_counts_a_raising_reward_function_as_failed_samples(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    program = write_program(tmp_path, endpoint, compare="[none]")

    def raising_on_h0(output: str, row: dict[str, Any]) -> bool:
        if row["id"] == "h0":
            raise ValueError("no reward for h0")
        return correct(output, row)

    async def cell() -> Any:
        return await g.aevaluate(program, runs=tmp_path / "runs", rewards={"correct": raising_on_h0})

    result = asyncio.run(cell())

    assert result.status == "completed"  # 4 of 48 samples: under max_failures
    (library,) = result.to_json()["libraries"]
    assert library["failures"]["failed"] == 4 and library["failures"]["attempted"] == 48
    assert library["questions"] == 11
