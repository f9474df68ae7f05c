"""The shared response cache and each run's record, against the test endpoint."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint

from grpo_dsl.clients import ChatRequest, ChatResponse, Usage, build_client
from grpo_dsl.clients.cache import CACHE_FILE, RunRecord, cache_directory, cache_info, prune_cache
from grpo_dsl.clients.local import cache_dir
from grpo_dsl.prompts.messages import DemosPlacement, compose_templates, render_messages


def model(endpoint: Endpoint | str, **overrides: Any) -> dict[str, Any]:
    base_url = endpoint if isinstance(endpoint, str) else endpoint.base_url
    return {"name": "test-model", "base_url": base_url, "api_key": "k", "concurrency": 8, **overrides}


def rollouts(count: int, *, stage: str = "rollout", split: str = "train", block: str = "m") -> list[ChatRequest]:
    return [
        ChatRequest(block, ({"role": "user", "content": f"q{i}"},), temperature=0.7, seed=i, stage=stage, sample_key=f"1/q{i}/0", split=split)
        for i in range(count)
    ]


def answer(
    models: Mapping[str, Mapping[str, Any]],
    requests: Sequence[ChatRequest],
    *,
    shared: Mapping[str, Path] | None = None,
    record: Path | None = None,
    also: Sequence[Path] = (),
    usage: Usage | None = None,
) -> list[ChatResponse]:
    async def go() -> list[ChatResponse]:
        client = build_client(
            models,
            usage=usage if usage is not None else Usage(models),
            cache_dirs=shared or {},
            record=RunRecord(record, also) if record is not None else None,
        )
        async with client:
            return list(await asyncio.gather(*(client.complete(r) for r in requests)))

    return asyncio.run(go())


def test_runs_in_other_directories_share_answers(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": model(endpoint)}
    shared = {"m": tmp_path / "shared"}
    first = answer(models, rollouts(30), shared=shared, record=tmp_path / "a" / "responses.jsonl")
    endpoint.reset()
    usage = Usage(models)

    again = answer(models, rollouts(30), shared=shared, record=tmp_path / "b" / "responses.jsonl", usage=usage)

    assert endpoint.stats()["total"] == 0
    assert [r.content for r in again] == [r.content for r in first] and all(r.cached for r in again)
    assert (usage.total.calls, usage.total.cached_calls) == (0, 30)
    recorded = [json.loads(line) for line in (tmp_path / "b" / "responses.jsonl").read_text().splitlines()]
    assert len(recorded) == 30, "a run records the answers it took from the shared cache"
    assert {r["namespace"] for r in recorded} == {"rollout/train"}
    assert recorded[0]["request"]["model"] == "test-model" and recorded[0]["response"]["content"].startswith("echo: q")


def test_validation_samples_never_answer_training_rollouts(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": model(endpoint)}
    shared = {"m": tmp_path}

    answer(models, rollouts(5), shared=shared)
    answer(models, rollouts(5, stage="validate"), shared=shared)
    answer(models, rollouts(5, split="held_out"), shared=shared)

    assert endpoint.stats()["total"] == 15
    info = cache_info(tmp_path)
    assert info is not None
    assert dict(info.namespaces) == {"gate/train": 5, "rollout/held_out": 5, "rollout/train": 5}


def test_the_demos_a_prompt_shows_are_part_of_its_key(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": model(endpoint)}
    shared = {"m": tmp_path}
    demo = {"id": "d1", "fields": {"question": "2 + 2"}, "answer": "4"}
    asked: list[list[ChatRequest]] = []
    placements: tuple[DemosPlacement, ...] = ("turns", "system")
    for placement in placements:
        templates = compose_templates("Answer briefly.", "Q: {{ question }}", "system", placement)
        for demos in ((), (demo,)):
            messages = tuple(render_messages(templates, {"question": "3 + 4"}, demos=demos))
            asked.append([ChatRequest("m", messages, stage="rollout", sample_key="1/q1/0", split="train")])

    answers = [answer(models, requests, shared=shared)[0] for requests in asked]

    assert endpoint.stats()["total"] == 3, "without demos, then with demos shown as turns or in the system turn"
    assert [a.cached for a in answers] == [False, False, True, False], "without demos the placement changes nothing"
    assert [a.cached for a in answer(models, [r for requests in asked for r in requests], shared=shared)] == [True] * 4


def test_a_run_answers_from_its_record_after_the_shared_cache_is_pruned(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": model(endpoint)}
    record = tmp_path / "run" / "responses.jsonl"
    first = answer(models, rollouts(10), shared={"m": tmp_path / "shared"}, record=record)
    assert prune_cache(tmp_path / "shared", older_than=0.0) == 10
    endpoint.reset()

    again = answer(models, rollouts(10), shared={"m": tmp_path / "shared"}, record=record)
    without_any_shared_cache = answer(models, rollouts(10), record=record)

    assert endpoint.stats()["total"] == 0
    assert [r.content for r in again] == [r.content for r in without_any_shared_cache] == [r.content for r in first]


def test_another_runs_record_is_read_and_copied_into_this_one(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": model(endpoint)}
    answer(models, rollouts(4), record=tmp_path / "original.jsonl")
    endpoint.reset()

    replayed = answer(models, rollouts(6), record=tmp_path / "replay.jsonl", also=[tmp_path / "original.jsonl"])

    assert endpoint.stats()["total"] == 2
    assert [r.cached for r in replayed] == [True] * 4 + [False] * 2
    assert len((tmp_path / "replay.jsonl").read_text().splitlines()) == 6
    assert len((tmp_path / "original.jsonl").read_text().splitlines()) == 4


def test_a_line_torn_by_a_killed_process_is_passed_over(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": model(endpoint)}
    record = tmp_path / "responses.jsonl"
    answer(models, rollouts(3), record=record)
    lines = record.read_bytes().splitlines(keepends=True)
    record.write_bytes(b"".join(lines[:2]) + lines[2][:40])
    endpoint.reset()

    again = answer(models, rollouts(3), record=record)

    assert [r.cached for r in again] == [True, True, False]
    assert endpoint.stats()["total"] == 1
    assert [json.loads(line)["sample_key"] for line in record.read_text().splitlines() if line.startswith("{") and line.endswith("}")] == [
        "1/q0/0",
        "1/q1/0",
        "1/q2/0",
    ]


def test_a_model_may_keep_its_own_cache_or_none(endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "user"))
    assert cache_directory(None, tmp_path) == cache_dir() == tmp_path / "user"
    assert cache_directory(False, tmp_path) is None
    assert cache_directory("caches/mine", tmp_path / "program") == tmp_path / "program" / "caches" / "mine"
    models = {"a": model(endpoint), "b": model(endpoint, name="other-model")}
    requests = rollouts(3, block="a") + rollouts(3, block="b")

    answer(models, requests, shared={"a": tmp_path / "user"})
    answer(models, requests, shared={"a": tmp_path / "user"})

    assert endpoint.stats()["total"] == 3 + 3 + 3, "the model without a shared cache pays every time"


def test_local_models_of_one_name_but_other_weights_share_nothing(endpoint: Endpoint, tmp_path: Path) -> None:
    first = {"m": model(endpoint, weights="gguf:small.gguf:100:1")}
    other = {"m": model(endpoint, weights="gguf:small.gguf:100:2")}

    answer(first, rollouts(4), shared={"m": tmp_path})
    answer(other, rollouts(4), shared={"m": tmp_path})
    again = answer(first, rollouts(4), shared={"m": tmp_path})

    assert endpoint.stats()["total"] == 8
    assert all(r.cached for r in again)


def test_info_and_prune(endpoint: Endpoint, tmp_path: Path) -> None:
    assert cache_info(tmp_path) is None
    models = {"m": model(endpoint)}
    answer(models, rollouts(8), shared={"m": tmp_path})
    answer(models, rollouts(12), shared={"m": tmp_path})

    info = cache_info(tmp_path)

    assert info is not None and info.entries == 12 and info.size > 0
    assert info.last_session is not None
    assert (info.last_session["hits"], info.last_session["misses"], info.last_session["stored"]) == (8, 4, 4)
    assert info.last_hit_rate == pytest.approx(8 / 12)
    assert prune_cache(tmp_path, older_than=3600.0) == 0
    with sqlite3.connect(tmp_path / CACHE_FILE) as db:
        db.execute("UPDATE responses SET created = created - 40 * 86400, used = used - 40 * 86400")
    answer(models, rollouts(2), shared={"m": tmp_path})
    assert prune_cache(tmp_path, older_than=30 * 86400) == 10, "entries a run used since stay, however old"
    pruned = cache_info(tmp_path)
    assert pruned is not None and pruned.entries == 2


WRITER = """
import sys
from pathlib import Path
sys.path[:0] = {paths!r}
from test_cache import answer, model, rollouts
answer({{"m": model({base_url!r})}}, rollouts({count})[{start}:], shared={{"m": Path({folder!r})}})
"""


def test_processes_writing_at_once_leave_a_sound_cache(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(faults={"latency_ms": 5})
    paths = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(paths=paths, base_url=endpoint.base_url, count=600, start=start, folder=str(tmp_path))],
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in (0, 200, 400)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr

    with sqlite3.connect(tmp_path / CACHE_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (600,)
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (3,)
    endpoint.reset()
    assert all(r.cached for r in answer({"m": model(endpoint)}, rollouts(600), shared={"m": tmp_path}))
    assert endpoint.stats()["total"] == 0
