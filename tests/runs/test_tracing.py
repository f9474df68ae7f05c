"""Traces: a learning run's spans reach a real OTLP/HTTP receiver on loopback, nested
run -> step -> group -> call with the documented attributes; without
OTEL_EXPORTER_OTLP_ENDPOINT nothing from OpenTelemetry is even imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world
from support.otlp import Receiver, ReceivedSpan

from grpo_dsl.learning.run import RunResult, resume_run, start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.runs.directory import read_events
from grpo_dsl.runs.tracing import ENDPOINT_VARIABLE

CHECKOUT = Path(__file__).resolve().parents[2]
CLIENT, INTERNAL, ERROR = 3, 1, 2
"""OTLP's SpanKind CLIENT and INTERNAL, and Status ERROR."""


def _learn(folder: Path, endpoint: Endpoint) -> RunResult:
    program = write_world(folder, endpoint.base_url)
    return start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)


def _by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def test_a_learning_run_sends_run_step_group_and_call_spans(
    endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint.configure(script="support.worlds:date_world")
    with Receiver() as receiver:
        monkeypatch.setenv(ENDPOINT_VARIABLE, receiver.endpoint)
        result = _learn(tmp_path, endpoint)
        spans = receiver.spans()
    assert result.status == "completed"
    assert receiver.requests >= 1
    by_id = _by_id(spans)
    (run,) = [s for s in spans if not s.parent_id]
    assert run.name == "learn date_lessons" and run.kind == INTERNAL
    assert run.attributes["grpo.learn"] == "date_lessons"
    assert run.attributes["grpo.run_dir"] == str(result.run_dir)
    assert run.attributes["grpo.plan_sha256"] == load_plan(tmp_path / "world.grpo").sha256
    assert run.resource["service.name"] == "grpo-dsl"
    assert {s.trace_id for s in spans} == {run.trace_id}

    steps = sorted((s for s in spans if s.name.startswith("step ")), key=lambda s: s.attributes["grpo.step"])
    assert [s.parent_id for s in steps] == [run.span_id] * len(result.steps)
    for span, outcome in zip(steps, result.steps):
        assert span.name == f"step {outcome.step}"
        assert span.attributes["grpo.mean_reward"] == pytest.approx(outcome.mean_reward)
        assert (span.attributes["grpo.kept"], span.attributes["grpo.library_size"]) == (outcome.kept, outcome.library_size)

    groups = [s for s in spans if s.name.startswith("group ")]
    assert len(groups) == sum(o.groups for o in result.steps)
    rewards = {g["group"]: g for step in result.steps for g in json.loads((result.run_dir / f"steps/{step.step:04d}/rewards.json").read_text())}
    for group in groups:
        step = by_id[group.parent_id]
        assert step.name == f"step {group.attributes['grpo.group'].split(':')[0]}"
        recorded = rewards[group.attributes["grpo.group"]]
        assert group.attributes["grpo.rewards"] == recorded["rewards"]
        assert group.attributes["grpo.kept"] == recorded["kept"]

    calls = [s for s in spans if s.kind == CLIENT and s.name.startswith("chat ")]
    events = [e for e in read_events(result.run_dir / "events.jsonl") if e["event"] == "call"]
    assert len(calls) == len(events) == endpoint.stats()["total"]
    assert Counter(c.attributes["grpo.stage"] for c in calls) == Counter(e["stage"] for e in events)
    tokens = {(e["stage"], e["sample_key"]): (e["prompt_tokens"], e["completion_tokens"]) for e in events}
    host, port = endpoint.base_url.split("//")[1].split("/")[0].split(":")
    for call in calls:
        a = call.attributes
        assert call.name == "chat world"
        assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("chat", "openai", "world")
        assert (a["server.address"], a["server.port"]) == (host, int(port))
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == tokens[a["grpo.stage"], a["grpo.sample_key"]]
        assert a["grpo.cache_hit"] is False
        assert a["grpo.cost_usd"] == pytest.approx((a["gen_ai.usage.input_tokens"] * 1.0 + a["gen_ai.usage.output_tokens"] * 2.0) / 1e6)
        parent = by_id[call.parent_id]
        if a["grpo.stage"] == "rollout":
            step, question = a["grpo.sample_key"].split("/")[:2]
            assert parent.attributes["grpo.group"] == f"{step}:{question}"
            assert a["gen_ai.request.temperature"] == 0.7 and a["gen_ai.request.max_tokens"] == 20
        elif a["grpo.stage"] == "consolidate":
            assert parent.name.startswith("step ")
        else:
            assert parent.name.startswith("group ")
    assert sum(c.attributes["grpo.cost_usd"] for c in calls) == pytest.approx(result.usage["total"]["usd"])


def test_a_resumed_step_answered_by_the_cache_says_so(endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint.configure(script="support.worlds:date_world")
    first = _learn(tmp_path, endpoint)
    (first.run_dir / "steps" / f"{len(first.steps):04d}" / "library.json").unlink()
    made = endpoint.stats()["total"]
    with Receiver() as receiver:
        monkeypatch.setenv(ENDPOINT_VARIABLE, receiver.endpoint)
        again = resume_run(first.run_dir, stream=None)
        spans = receiver.spans()
    assert again.status == "completed" and endpoint.stats()["total"] == made
    calls = [s for s in spans if s.kind == CLIENT and s.name.startswith("chat ")]
    assert calls and all(c.attributes["grpo.cache_hit"] is True and c.attributes["grpo.cost_usd"] == 0 for c in calls)
    (run,) = [s for s in spans if not s.parent_id]
    assert run.attributes["grpo.completed_steps"] == len(first.steps) - 1
    assert [s.attributes["grpo.step"] for s in spans if s.name.startswith("step ")] == [len(first.steps)]


def test_a_failed_call_marks_its_spans_failed(endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint.configure(script="support.worlds:date_world", api_key="another-key")
    with Receiver() as receiver:
        monkeypatch.setenv(ENDPOINT_VARIABLE, receiver.endpoint)
        result = _learn(tmp_path, endpoint)
        spans = receiver.spans()
    assert result.status == "failed"
    (run,) = [s for s in spans if not s.parent_id]
    assert run.status == ERROR
    (preflight,) = [s for s in spans if s.name == "preflight"]
    assert preflight.kind == CLIENT and preflight.status == ERROR  # the wrong key fails before any step


PROBE = """
import sys
from pathlib import Path
from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan

folder = Path(sys.argv[1])
result = start_run(load_plan(folder / "world.grpo"), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
assert result.status == "completed", result.message
print(sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry"))
"""


@pytest.mark.parametrize("traced", [False, True])
def test_opentelemetry_is_imported_only_when_the_endpoint_is_set(endpoint: Endpoint, tmp_path: Path, traced: bool) -> None:
    endpoint.configure(script="support.worlds:date_world")
    write_world(tmp_path, endpoint.base_url, questions=4)
    with Receiver() as receiver:
        environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(CHECKOUT / "tests")}
        if traced:
            environment[ENDPOINT_VARIABLE] = receiver.endpoint
        probe = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], env=environment, capture_output=True, text=True)
        assert probe.returncode == 0, probe.stderr
        imported = json.loads(probe.stdout.strip().replace("'", '"'))
        if traced:
            assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in imported
            assert receiver.spans()
        else:
            assert imported == []
            assert receiver.requests == 0
