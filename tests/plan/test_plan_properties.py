"""Properties of compilation over programs built in Python: printing a built program
with `to_source` and parsing it back gives the same tree and the same plan; the
estimate keeps the counts of the method whatever the sizes."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import grpo_dsl as g
from grpo_dsl.language import ast
from grpo_dsl.language.parser import parse
from grpo_dsl.plan.estimate import PROPOSALS_PER_CONSOLIDATION

Draw = Callable[[st.SearchStrategy[Any]], Any]

ROWS = [{"problem": f"What is {i} * {i}?", "answer": str(i * i), "topic": "squares" if i % 2 else "misc"} for i in range(23)]

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in {"and", "or", "not", "if", "then", "else", "true", "false", "null", "none", "output", "answer"}
)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\n\t\"\\{}"), max_size=30)
numbers = st.integers(-1000, 1000) | st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 3))


def optional(draw: Draw, attributes: dict[str, Any], name: str, strategy: st.SearchStrategy[Any]) -> None:
    """Set `name` to a drawn value, or leave it out (its default is filled in)."""
    if draw(st.booleans()):
        attributes[name] = draw(strategy)


def text_expressions() -> st.SearchStrategy[ast.Expr]:
    leaves = st.sampled_from([g.ref("output"), g.ref("answer"), g.ref("topic")]) | text.map(g.expr)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda x: g.call("strip", x), inner),
            st.builds(lambda x: g.call("lower", x), inner),
            st.builds(lambda x: g.call("boxed", x), inner),
        ),
        max_leaves=3,
    )


def number_expressions(rewards: list[str]) -> st.SearchStrategy[ast.Expr]:
    strings = text_expressions()
    leaves = st.one_of(
        numbers.map(g.expr),
        st.booleans().map(g.expr),
        st.builds(lambda a, b: g.call("exact", a, b), strings, strings),
        st.builds(lambda a, b: g.call("math_equal", a, b), strings, strings),
        st.builds(lambda a: g.call("length", a), strings),
        st.sampled_from([g.ref("tokens"), g.ref("tool_calls"), *map(g.ref, rewards)]),
    )

    def branches(inner: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
        ops = st.sampled_from(["+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or"])
        return st.one_of(
            st.builds(g.binary, ops, inner, inner),
            st.builds(lambda x: g.unary("not", x), inner),
            st.builds(lambda x: g.unary("-", x), inner.filter(lambda e: not isinstance(e, ast.Number))),
            st.builds(g.conditional, inner, inner, inner),
            st.builds(lambda a, b, c: g.call("clip", a, b, c), inner, inner, inner),
            st.builds(lambda items: g.call("max", *items), st.lists(inner, min_size=1, max_size=3)),
        )

    return st.recursive(leaves, branches, max_leaves=8)


@st.composite
def programs(draw: Draw, base_dir: str) -> ast.Program:
    """A valid program over the data file `base_dir/data/rows.jsonl`."""
    pool = draw(st.lists(names, min_size=12, max_size=12, unique=True))
    model_names, (data_name, held_name, task_name), reward_names = pool[:2], pool[2:5], pool[5:8]
    policy_name, learn_name, evaluate_name, emit_name = pool[8:12]

    models = []
    for name in model_names:
        model: dict[str, Any] = {"name": draw(text.filter(bool))}
        optional(draw, model, "base_url", st.sampled_from(["http://127.0.0.1:8080/v1", g.env("GRPO_URL", "http://x/v1")]))
        optional(draw, model, "api_key", st.just(g.env("GRPO_KEY")))
        optional(draw, model, "concurrency", st.integers(1, 64))
        optional(draw, model, "timeout", st.floats(0.5, 900).map(lambda x: round(x, 2)))
        optional(draw, model, "max_retries", st.integers(0, 9))
        optional(draw, model, "structured", st.sampled_from(["json_schema", "json_object", "text"]))
        optional(draw, model, "price", st.fixed_dictionaries({}, optional={"input": st.floats(0, 20), "output": st.floats(0, 20)}))
        models.append(g.Model(name, **model))

    mapped = draw(st.booleans())
    datasets = []
    for name in (data_name, held_name):
        dataset: dict[str, Any] = {"source": "data/rows.jsonl"}
        if mapped:
            dataset["fields"] = {"question": "problem"}
        optional(draw, dataset, "limit", st.integers(1, 30))
        optional(draw, dataset, "shuffle", st.booleans())
        datasets.append(g.Dataset(name, **dataset))

    question = "question" if mapped else "problem"
    task: dict[str, Any] = {
        "model": model_names[0],
        "prompt": draw(st.sampled_from(["{{ %s }}", "Solve:\n\n{{ %s }}\n", "{{ %s }} ({{ topic }})"])) % question,
    }
    optional(draw, task, "system", text)
    optional(draw, task, "experiences", st.sampled_from(["system", "user", "none"]))
    optional(draw, task, "temperature", st.floats(0, 2))
    optional(draw, task, "top_p", st.floats(0.01, 1))
    optional(draw, task, "max_tokens", st.integers(1, 32768))
    optional(draw, task, "tools", st.sampled_from([[], ["python"]]))
    optional(draw, task, "max_turns", st.integers(1, 12))

    rewards = [g.Reward(reward_names[0], draw(number_expressions([])))]
    rewards.append(g.Reward(reward_names[1], draw(number_expressions(reward_names[:1]))))
    rewards.append(g.Reward(reward_names[2], judge=draw(st.sampled_from(model_names)), rubric=draw(text)))

    policy: dict[str, Any] = {}
    optional(draw, policy, "ops", st.lists(st.sampled_from(["add", "modify", "delete", "keep"]), min_size=1, max_size=4))
    optional(draw, policy, "max_per_group", st.integers(1, 5))
    optional(draw, policy, "capacity", st.integers(1, 100))
    optional(draw, policy, "max_words", st.integers(1, 64))
    optional(draw, policy, "on_full", st.sampled_from(["reject", "evict_oldest", "evict_least_used"]))
    optional(draw, policy, "style", text)

    learn: dict[str, Any] = {
        "task": task_name,
        "data": data_name,
        "reward": draw(st.sampled_from(reward_names)),
        "group_size": draw(st.integers(2, 8)),
    }
    optional(draw, learn, "batch_size", st.integers(1, 40))
    optional(draw, learn, "epochs", st.integers(1, 4))
    optional(draw, learn, "temperature", st.floats(0.05, 2))
    optional(draw, learn, "learner", st.sampled_from(model_names))
    optional(draw, learn, "policy", st.just(policy_name))
    optional(draw, learn, "validate", st.just(held_name))
    optional(draw, learn, "seed", st.integers(0, 2**31))
    optional(draw, learn, "summarize", st.booleans())
    optional(draw, learn, "budget", st.fixed_dictionaries({"usd": st.floats(0.01, 100)}, optional={"calls": st.integers(1, 10**6)}))

    samples = draw(st.integers(1, 8))
    evaluate: dict[str, Any] = {"task": task_name, "data": held_name, "compare": draw(st.sampled_from([["none", learn_name], [learn_name]]))}
    optional(draw, evaluate, "reward", st.sampled_from(reward_names))
    optional(draw, evaluate, "samples", st.just(samples))
    k = st.integers(1, samples if "samples" in evaluate else 1)
    optional(draw, evaluate, "metrics", st.lists(st.one_of(st.just("mean"), k.map("pass@{}".format), k.map("mean@{}".format)), min_size=1, max_size=3))
    optional(draw, evaluate, "seed", st.integers(0, 99))

    emit: dict[str, Any] = {"library": learn_name, "path": draw(st.sampled_from(["prompts/out", "../elsewhere/prompts"]))}
    optional(draw, emit, "formats", st.lists(st.sampled_from(["json", "jinja", "markdown", "prompty"]), min_size=1, max_size=4, unique=True))
    optional(draw, emit, "version", st.sampled_from(["1.0.0", "2.3.4"]))

    declarations: list[ast.Decl] = [
        *models,
        *datasets,
        g.Task(task_name, **task),
        *rewards,
        g.Policy(policy_name, **policy),
        g.Learn(learn_name, **learn),
        g.Evaluate(evaluate_name, **evaluate),
        g.Emit(emit_name, **emit),
    ]
    return g.Program(draw(st.permutations(declarations)), base_dir=base_dir)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_built_program_printed_and_parsed_again_compiles_to_the_same_plan(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "data").mkdir()
        (Path(folder) / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
        program = data.draw(programs(folder))
        built = g.compile(program)
        source = g.to_source(program)
        parsed = parse(source, program.path)
        assert parsed.declarations == program.declarations
        assert g.compile(parsed).to_json() == built.to_json()
        assert g.compile(g.loads(source, program.path)).to_json() == built.to_json()
        assert folder not in built.to_json()


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 60),
    batch=st.integers(1, 40),
    epochs=st.integers(1, 4),
    group=st.integers(2, 8),
    per_group=st.integers(1, 5),
    held=st.integers(1, 12),
)
def test_the_estimate_counts_the_calls_of_the_method(rows: int, batch: int, epochs: int, group: int, per_group: int, held: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        train = [{**r, "id": f"r{i}"} for i, r in enumerate((ROWS * 3)[:rows])]  # one id each: repeated rows are an error
        (Path(folder) / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
        (Path(folder) / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[:held]), encoding="utf-8")
        program = g.Program(
            [
                g.Model("m", name="x", price={"input": 1.0, "output": 2.0}),
                g.Dataset("train", source="train.jsonl"),
                g.Dataset("held", source="held.jsonl"),
                g.Task("t", model="m", prompt="{{ problem }}", max_tokens=100),
                g.Reward("r", g.call("exact", g.ref("output"), g.ref("answer"))),
                g.Policy("p", max_per_group=per_group),
                g.Learn("l", task="t", data="train", reward="r", group_size=group, batch_size=batch, epochs=epochs, policy="p", validate="held"),
            ],
            base_dir=folder,
        )
        learn = g.compile(program).data["learns"]["l"]
    stages = {stage["stage"]: stage for stage in learn["estimate"]["stages"]}
    steps_per_epoch = math.ceil(rows / batch)
    assert learn["schedule"] == {
        "rows": rows,
        "steps_per_epoch": steps_per_epoch,
        "steps": steps_per_epoch * epochs,
        "last_batch": rows - (steps_per_epoch - 1) * batch if rows else 0,
    }
    assert stages["rollout"]["calls"] == group * rows * epochs
    assert stages["summary"]["calls"] == stages["rollout"]["calls"]
    assert stages["advantage"]["calls"] == rows * epochs
    batches = [min(batch, rows - start) for start in range(0, rows, batch)]
    assert stages["consolidate"]["calls"] == epochs * sum(math.ceil(b * per_group / PROPOSALS_PER_CONSOLIDATION) for b in batches)
    assert stages["validate"]["calls"] == 2 * held * group * steps_per_epoch * epochs
    assert [s["upper_bound"] for s in learn["estimate"]["stages"]] == [False, True, True, True, True]
    total = learn["estimate"]["total"]
    assert total["calls"] == sum(s["calls"] for s in stages.values())
    for stage in stages.values():
        assert stage["completion_tokens"] == stage["calls"] * {"rollout": 100, "validate": 100, "summary": 300, "advantage": 600, "consolidate": 1000}[stage["stage"]]
        assert math.isclose(stage["usd"], (stage["prompt_tokens"] * 1.0 + stage["completion_tokens"] * 2.0) / 1e6, abs_tol=1e-6)
        assert (stage["prompt_tokens"] > 0) == (stage["calls"] > 0)
