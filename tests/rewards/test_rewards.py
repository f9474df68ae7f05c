"""Reward evaluation: expression trees, references between rewards, user Python rewards, judges."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from grpo_dsl.clients.protocol import BudgetExceeded, ChatRequest, ChatResponse
from grpo_dsl.language.builtins import RewardError
from grpo_dsl.rewards.scorer import Environment, RewardResult, RewardScorer, evaluate

Node = dict[str, Any]


def lit(value: Any) -> Node:
    return {"node": "literal", "value": value}


def name(identifier: str) -> Node:
    return {"node": "name", "name": identifier}


def call(function: str, *args: Node) -> Node:
    return {"node": "call", "function": function, "args": list(args)}


def binary(op: str, left: Node, right: Node) -> Node:
    return {"node": "binary", "op": op, "left": left, "right": right}


def unary(op: str, operand: Node) -> Node:
    return {"node": "unary", "op": op, "operand": operand}


def if_(condition: Node, then: Node, otherwise: Node) -> Node:
    return {"node": "if", "condition": condition, "then": then, "else": otherwise}


def run(node: Node, **names: Any) -> Any:
    env = Environment(names=names)
    return asyncio.run(evaluate(node, env))


class TestEvaluate:
    def test_literals(self) -> None:
        for value in ("text", 3, 2.5, True, None):
            assert run(lit(value)) == value

    def test_names(self) -> None:
        assert run(name("answer"), answer="42") == "42"

    def test_list(self) -> None:
        assert run({"node": "list", "items": [lit(1), name("x")]}, x="a") == [1, "a"]

    def test_call(self) -> None:
        assert run(call("boxed", name("output")), output="so \\boxed{7}") == "7"
        assert run(call("max", lit(1), lit(5), lit(3))) == 5

    def test_unary(self) -> None:
        assert run(unary("-", lit(3))) == -3
        assert run(unary("not", lit(""))) is True
        assert run(unary("-", lit(True))) == -1

    def test_arithmetic(self) -> None:
        assert run(binary("+", lit(1), binary("*", lit(2), lit(3)))) == 7
        assert run(binary("-", lit(1), lit(3))) == -2
        assert run(binary("/", lit(3), lit(4))) == 0.75

    def test_booleans_count_as_one_and_zero(self) -> None:
        assert run(binary("+", lit(True), lit(True))) == 2
        assert run(binary("*", lit(0.1), binary("<", lit(3), lit(4000)))) == 0.1
        assert run(binary("*", lit(0.9), lit(False))) == 0

    def test_numeric_text_counts_as_number(self) -> None:
        assert run(binary("+", name("n"), lit(1)), n="1,000") == 1001

    def test_comparisons(self) -> None:
        assert run(binary("<", lit(1), lit(2))) is True
        assert run(binary(">=", lit(2), lit(2))) is True
        assert run(binary(">", lit(1), lit(2))) is False
        assert run(binary("<=", lit(3), lit(2))) is False
        assert run(binary("==", lit("42"), lit(42))) is True
        assert run(binary("==", lit("a"), lit("a"))) is True
        assert run(binary("!=", lit("01"), lit("1"))) is True
        assert run(binary("==", lit(True), lit(1))) is True

    def test_logic_short_circuits(self) -> None:
        assert run(binary("and", lit(False), name("missing"))) is False
        assert run(binary("or", lit(1), name("missing"))) is True
        assert run(binary("and", lit(1), lit("x"))) is True
        assert run(binary("or", lit(0), lit(""))) is False

    def test_if_evaluates_only_the_chosen_branch(self) -> None:
        assert run(if_(lit(True), lit(1), name("missing"))) == 1
        assert run(if_(lit(0), name("missing"), lit("b"))) == "b"

    def test_division_by_zero_is_zero_with_a_note(self) -> None:
        env = Environment(names={})
        assert asyncio.run(evaluate(binary("/", lit(1), lit(0)), env)) == 0
        assert env.notes == ["division by zero (1 / 0) counted as 0"]

    @pytest.mark.parametrize(
        ("node", "message"),
        [
            (name("nope"), "unknown name `nope`"),
            (call("nope", lit(1)), "unknown function `nope`"),
            (call("clip", lit(1)), "clip() takes 3 argument(s), got 1"),
            (binary("+", lit("abc"), lit(1)), "`+` needs numbers, got the text 'abc'"),
            (binary("<", lit(None), lit(1)), "`<` needs numbers, got null"),
            (binary("%", lit(1), lit(1)), "unknown operator `%`"),
            ({"node": "lambda"}, "unknown node kind `lambda`"),
            ({"node": "binary", "op": "+"}, "without `left`"),
        ],
    )
    def test_errors(self, node: Node, message: str) -> None:
        with pytest.raises(RewardError, match=re.escape(message)):
            run(node)


USER_REWARDS = '''
import os, time

def good(output, row):
    return 0.25 if row["answer"] in output else 0.75

def flag(output, row):
    return output == row["answer"]

def boom(output, row):
    return 1 / 0

def text(output, row):
    return "high"

def not_finite(output, row):
    return float("nan")

def hang(output, row):
    with open(row["pid_file"], "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(0.01)

def chatty(output, row):
    print("this must not disturb the protocol")
    return 1
'''


def python_reward(function: str) -> dict[str, str]:
    return {"kind": "python", "path": "rewards.py", "function": function}


REWARDS: dict[str, Mapping[str, Any]] = {
    "correct": {"kind": "expression", "expression": call("math_equal", call("boxed", name("output")), name("answer"))},
    "concise": {
        "kind": "expression",
        "expression": binary(
            "+",
            binary("*", lit(0.9), name("correct")),
            binary("*", lit(0.1), binary("<", call("length", name("output")), lit(40))),
        ),
    },
    "doubled": {"kind": "expression", "expression": binary("+", name("concise"), name("correct"))},
    "loop_a": {"kind": "expression", "expression": binary("+", name("loop_b"), lit(1))},
    "loop_b": {"kind": "expression", "expression": name("loop_a")},
    "uses_broken": {"kind": "expression", "expression": binary("+", name("boom"), lit(1))},
    "ratio": {"kind": "expression", "expression": binary("/", name("tokens"), name("tool_calls"))},
    "text_result": {"kind": "expression", "expression": call("boxed", name("output"))},
    "bad_regex": {"kind": "expression", "expression": call("matches", name("output"), lit("("))},
    "good": python_reward("good"),
    "flag": python_reward("flag"),
    "boom": python_reward("boom"),
    "text": python_reward("text"),
    "not_finite": python_reward("not_finite"),
    "chatty": python_reward("chatty"),
    "missing_function": python_reward("nothing_here"),
    "missing_file": {"kind": "python", "path": "absent.py", "function": "f"},
}


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewardScorer]:
    base = tmp_path_factory.mktemp("program")
    (base / "rewards.py").write_text(USER_REWARDS)
    scorer = RewardScorer(REWARDS, base_dir=base, timeout_s=60, workers=1)
    yield scorer
    scorer.close()


def score(scorer: RewardScorer, reward: str, output: str, row: Mapping[str, Any] | None = None, **counts: int) -> RewardResult:
    return asyncio.run(
        scorer.score(reward, output, row or {"answer": "1/2"}, tokens=counts.get("tokens", 10), tool_calls=counts.get("tool_calls", 0))
    )


class TestExpressionRewards:
    def test_math_equal_in_the_worker(self, scorer: RewardScorer) -> None:
        assert score(scorer, "correct", "so \\boxed{\\frac{1}{2}}") == RewardResult(1.0)
        assert score(scorer, "correct", "so \\boxed{0.4}") == RewardResult(0.0)

    def test_reference_to_another_reward(self, scorer: RewardScorer) -> None:
        result = score(scorer, "concise", "\\boxed{0.5}")
        assert result.value == pytest.approx(1.0)
        assert result.details["rewards"] == {"correct": 1.0}
        assert score(scorer, "concise", "\\boxed{0.5}" + "x" * 50).value == pytest.approx(0.9)

    def test_reads_counts(self, scorer: RewardScorer) -> None:
        assert score(scorer, "ratio", "", tokens=30, tool_calls=3).value == 10.0
        result = score(scorer, "ratio", "", tokens=30, tool_calls=0)
        assert result == RewardResult(0.0, None, {"notes": ["division by zero (30 / 0) counted as 0"]})

    def test_cycle_is_an_error(self, scorer: RewardScorer) -> None:
        result = score(scorer, "loop_a", "")
        assert result.value == 0.0
        assert result.error is not None and "cycle: loop_a -> loop_b -> loop_a" in result.error

    def test_failed_reference_fails_the_reward(self, scorer: RewardScorer) -> None:
        result = score(scorer, "uses_broken", "")
        assert result.value == 0.0
        assert result.error is not None and "uses reward `boom`" in result.error and "ZeroDivisionError" in result.error

    def test_text_result_is_an_error(self, scorer: RewardScorer) -> None:
        result = score(scorer, "text_result", "\\boxed{yes}")
        assert result.value == 0.0
        assert result.error == "reward `text_result`: the reward must be a number or a boolean, got str 'yes'"

    def test_isolated_builtin_error(self, scorer: RewardScorer) -> None:
        result = score(scorer, "bad_regex", "x")
        assert result.value == 0.0
        assert result.error is not None and "invalid regular expression" in result.error

    def test_unknown_reward_name(self, scorer: RewardScorer) -> None:
        with pytest.raises(KeyError, match="nope"):
            score(scorer, "nope", "")

    def test_unknown_kind(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="unknown kind 'magic'"):
            RewardScorer({"x": {"kind": "magic"}}, base_dir=tmp_path)


class TestPythonRewards:
    def test_value(self, scorer: RewardScorer) -> None:
        assert score(scorer, "good", "the answer is 3").value == 0.75
        assert score(scorer, "good", "it is 1/2").value == 0.25

    def test_boolean_counts_as_number(self, scorer: RewardScorer) -> None:
        assert score(scorer, "flag", "1/2") == RewardResult(1.0)

    def test_printing_is_harmless(self, scorer: RewardScorer) -> None:
        assert score(scorer, "chatty", "") == RewardResult(1.0)

    @pytest.mark.parametrize(
        ("reward", "message"),
        [
            ("boom", "ZeroDivisionError: division by zero (at rewards.py:"),
            ("text", "`text` returned str 'high', expected a finite number"),
            ("not_finite", "returned float nan, expected a finite number"),
            ("missing_function", "rewards.py has no function `nothing_here`"),
            ("missing_file", "does not exist"),
        ],
    )
    def test_failures_are_recorded_with_reward_zero(self, scorer: RewardScorer, reward: str, message: str) -> None:
        result = score(scorer, reward, "out")
        assert result.value == 0.0
        assert result.error is not None and message in result.error

    def test_hung_function_is_killed(self, tmp_path: Path) -> None:
        (tmp_path / "rewards.py").write_text(USER_REWARDS)
        pid_file = tmp_path / "pid"
        rewards = {"hang": python_reward("hang"), "good": python_reward("good")}

        async def scenario() -> tuple[RewardResult, RewardResult]:
            async with RewardScorer(rewards, base_dir=tmp_path, timeout_s=1, workers=1) as scorer:
                hung = await scorer.score("hang", "", {"pid_file": str(pid_file)}, tokens=0, tool_calls=0)
                after = await scorer.score("good", "x", {"answer": "y"}, tokens=0, tool_calls=0)
                return hung, after

        hung, after = asyncio.run(scenario())
        assert hung.value == 0.0
        assert hung.error is not None and "stopped after 1 s without an answer" in hung.error
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)
        assert after == RewardResult(0.75)


class CannedJudge:
    """An LLMClient answering every request with the next canned reply."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(self.replies.pop(0), (), "stop", 100, 10)


class OverBudget:
    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise BudgetExceeded("usd", 1.0, 1.0, 0.1)


JUDGED: dict[str, Mapping[str, Any]] = {
    "polite": {"kind": "judge", "model": "grader", "rubric": "The answer is polite."},
    "both": {"kind": "expression", "expression": binary("+", name("polite"), name("polite"))},
}


def judge(client: Any, reward: str = "polite", **kwargs: Any) -> RewardResult:
    async def scenario() -> RewardResult:
        async with RewardScorer(JUDGED, base_dir=Path("."), client=client, **kwargs) as scorer:
            return await scorer.score(reward, "Thank you kindly.", {"question": "Say thanks"}, tokens=5, tool_calls=0)

    return asyncio.run(scenario())


class TestJudgeRewards:
    def test_score_and_request(self) -> None:
        client = CannedJudge('Here you go: {"score": 0.8, "reason": "courteous"}')
        result = judge(client, models={"grader": {"structured": "json_object"}})
        assert result == RewardResult(0.8, None, {"reason": "courteous"})
        (request,) = client.requests
        assert request.stage == "judge" and request.model == "grader"
        assert request.response_format is not None and request.response_format["type"] == "json_object"
        prompt = request.messages[0]["content"]
        assert "The answer is polite." in prompt and "Thank you kindly." in prompt and "question: Say thanks" in prompt

    def test_judged_once_per_rollout(self) -> None:
        client = CannedJudge('{"score": 0.5}')
        assert judge(client, "both").value == 1.0
        assert len(client.requests) == 1

    def test_unusable_reply_is_recorded(self) -> None:
        client = CannedJudge("I refuse.", '{"score": 7}')
        result = judge(client)
        assert result.value == 0.0
        assert result.error is not None and result.error.startswith("judge `grader` failed")
        assert len(client.requests) == 2

    def test_no_client(self) -> None:
        assert judge(None).error == "judge reward `polite` needs an LLM client"

    def test_budget_stop_propagates(self) -> None:
        with pytest.raises(BudgetExceeded):
            judge(OverBudget())
