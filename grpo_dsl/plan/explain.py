"""A plan in words, for a person deciding whether to run it (`grpo plan --explain`).

`explain(plan, "programs/math.grpo")` lists each `learn` step by step with the calls
every stage makes, the cost estimate (what is expected, and the bounds with its upper
bounds marked `<=`), each
`evaluate` and `emit`, and every default the compiler filled in. Values read from
the environment are shown as `env("VAR")`, never resolved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from grpo_dsl.plan import Plan

__all__ = ["explain"]

_NO_CALL = "(no LLM call)"


def _show(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"env", "default"}:
        default = f", {json.dumps(value['default'])}" if value["default"] is not None else ""
        return f'env("{value["env"]}"{default})'
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _table(estimate: Mapping[str, Any]) -> list[str]:
    header = (
        f"    {'stage':<12} {'expected calls':>14} {'tokens':>12} {'USD':>10}   {'calls':>10} {'max calls':>10}"
        f" {'prompt tokens':>15} {'completion tokens':>18} {'USD':>11}"
    )
    lines = ["    " + " " * 13 + f"{'expected':^38}   {'bound (<= marks an upper bound)':^68}", header]
    for row in [*estimate["stages"], {"stage": "total", "model": "", **estimate["total"]}]:
        mark = "<=" if row["upper_bound"] else ""
        expected = row["expected"]
        lines.append(
            f"    {row['stage']:<12} {expected['calls']:>14,} {expected['prompt_tokens'] + expected['completion_tokens']:>12,}"
            f" {expected['usd']:>10.4f}   {mark:>2}{row['calls']:>8,} {row['max_calls']:>10,} {row['prompt_tokens']:>15,}"
            f" {row['completion_tokens']:>18,} {row['usd']:>11.4f}"
        )
    lines.append("    assumptions:")
    lines.extend(f"      - {note}" for note in estimate["assumptions"])
    return lines


def _step_lines(data: Mapping[str, Any], learn: Mapping[str, Any]) -> list[str]:
    stages = {stage["stage"]: stage for stage in learn["estimate"]["stages"] if stage["stage"] != "judge"}
    judges = [stage for stage in learn["estimate"]["stages"] if stage["stage"] == "judge"]
    task = data["tasks"][learn["task"]]
    group, policy = learn["group_size"], learn["policy"]
    rollout = stages["rollout"]
    turns = f"; up to {task['max_turns']} turns each with tools" if task["tools"] else ""
    steps: list[tuple[str, str]] = [
        ("rollout", f"{rollout['per_step']} calls to `{rollout['model']}`: {group} answers to each question{turns}"),
    ]
    if judges:
        per_step = sum(j["calls"] for j in judges) // max(1, learn["schedule"]["steps"])
        models = ", ".join(sorted({f"`{j['model']}`" for j in judges}))
        steps.append(("reward", f"score every answer with `{learn['reward']}`: about {per_step} judge calls to {models}"))
    else:
        steps.append(("reward", f"score every answer with `{learn['reward']}` {_NO_CALL}"))
    if learn["ground_truth"]:
        steps.append(("filter", f"skip the groups whose {group} rewards are all equal {_NO_CALL}"))
    else:
        steps.append(("filter", f"keep every group: without ground truth the learner judges the answers {_NO_CALL}"))
    if "summary" in stages:
        summary = stages["summary"]
        steps.append(("summary", f"<= {summary['per_step']} calls to `{summary['model']}`: one per answer of a kept group"))
    advantage = stages["advantage"]
    steps.append(
        (
            "advantage",
            f"<= {advantage['per_step']} calls to `{advantage['model']}`: one per kept group,"
            f" at most {policy['max_per_group']} operations each",
        )
    )
    consolidate = stages["consolidate"]
    steps.append(("consolidate", f"<= {consolidate['per_step']} calls to `{consolidate['model']}`: merge the batch's proposals"))
    rule = f"the rule {policy['rule']['path']}:{policy['rule']['function']}" if policy["rule"] else "the built-in rule"
    steps.append(
        (
            "apply",
            f"{rule}: ops {', '.join(policy['ops'])}; capacity {policy['capacity']},"
            f" {policy['max_words']} words each, when full {policy['on_full']} {_NO_CALL}",
        )
    )
    if "validate" in stages:
        validate = stages["validate"]
        steps.append(
            (
                "validate",
                f"<= {validate['per_step']} calls to `{validate['model']}`: the old and the new library"
                f" on `{learn['validate']}`; keep the old one if the new is worse",
            )
        )
    if "prune" in stages:
        prune = stages["prune"]
        steps.append(
            (
                "prune",
                f"<= {prune['per_step']} calls to `{prune['model']}`: the library without each of its items"
                f" on `{learn['validate']}`; delete the items that hurt beyond noise",
            )
        )
    steps.append(("checkpoint", "write the step's outputs and the new library version"))
    return [f"    {index}. {name:<12} {text}" for index, (name, text) in enumerate(steps, start=1)]


def _learn(data: Mapping[str, Any], name: str, learn: Mapping[str, Any]) -> list[str]:
    schedule = learn["schedule"]
    lines = [
        f"learn {name}: task `{learn['task']}` on `{learn['data']}` ({_plural(schedule['rows'], 'question')}),"
        f" reward `{learn['reward']}`, learner `{learn['learner']}`",
        f"  {_plural(learn['epochs'], 'epoch')} x {_plural(schedule['steps_per_epoch'], 'step')} of up to"
        f" {learn['batch_size']} questions = {_plural(schedule['steps'], 'step')}; group size G = {learn['group_size']};"
        f" temperature {learn['temperature']}; seed {learn['seed']}",
    ]
    if learn["repeats"] > 1:
        ranked = f"; their last libraries are ranked on `{learn['validate']}`" if learn["validate"] else ""
        lines.append(f"  {learn['repeats']} repeats with seeds {learn['seed']} .. {learn['seed'] + learn['repeats'] - 1}{ranked}")
    budget = ", ".join(f"{key} {value}" for key, value in sorted(learn["budget"].items()) if value is not None)
    if budget:
        lines.append(f"  budget: stop cleanly after {budget}")
    lines.append("  each step, in order:")
    lines.extend(_step_lines(data, learn))
    lines.append("  estimate for the whole run" + (", every repeat" if learn["repeats"] > 1 else "") + ":")
    lines.extend(_table(learn["estimate"]))
    return lines


def _evaluate(name: str, evaluate: Mapping[str, Any]) -> list[str]:
    stage = evaluate["estimate"]["stages"][0]
    return [
        f"evaluate {name}: task `{evaluate['task']}` on `{evaluate['data']}`, reward `{evaluate['reward']}`,"
        f" {_plural(evaluate['samples'], 'sample')} a question, metrics {', '.join(evaluate['metrics'])}",
        f"  compares {', '.join(evaluate['compare'])}: {stage['calls']} calls to `{stage['model']}` ({stage['formula']})",
        "  estimate:",
        *_table(evaluate["estimate"]),
    ]


def _ablation(name: str, evaluate: Mapping[str, Any]) -> list[str]:
    method = {"loo": "leave-one-out", "shapley": f"Shapley values, at most {evaluate['subsets']} subsets"}[evaluate["ablate"]]
    stages = [s for s in evaluate["ablation_estimate"]["stages"] if s["stage"] == "ablate"]
    if not stages:
        return [f"ablate {name}: `compare` lists no library but `none`: `grpo ablate` needs `--library`"]
    return [
        f"ablate {name} (`grpo ablate`): {method}, each library on `{evaluate['data']}` as evaluate {name} samples it",
        *(f"  <= {stage['calls']} calls to `{stage['model']}` for {stage['formula']}" for stage in stages),
        "  estimate (<= marks an upper bound):",
        *_table(evaluate["ablation_estimate"]),
    ]


def _emit(name: str, emit: Mapping[str, Any]) -> list[str]:
    version = f", version {emit['version']}" if emit["version"] else ""
    return [
        f"emit {name}: the library of `{emit['library']}` as module `{emit['name']}` in {emit['path']}"
        f" ({', '.join(emit['formats'])}{version})"
    ]


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        value = value[part]
    return value


def explain(plan: Plan, program: str) -> str:
    """The plan of `program` (its path, for the title) as text for a person."""
    data = plan.data
    lines = [f"plan of {program} ({data['schema']}, compiler {data['compiler']}, sha256 {plan.sha256[:12]})"]
    models = data["models"]
    for name, model in sorted(models.items()):
        endpoint = _show(model["base_url"]) if model["base_url"] is not None else "the embedded local model"
        key = model["api_key"]
        shown_key = "none" if key is None else _show(key) if isinstance(key, Mapping) else "written in the program"
        lines.append(
            f"model {name}: {_show(model['name'])} at {endpoint}, api key {shown_key};"
            f" USD {model['price']['input']} / {model['price']['output']} per million prompt / completion tokens"
        )
    for name, learn in sorted(data["learns"].items()):
        lines += ["", *_learn(data, name, learn)]
    for name, evaluate in sorted(data["evaluates"].items()):
        lines += ["", *_evaluate(name, evaluate), "", *_ablation(name, evaluate)]
    for name, emit in sorted(data["emits"].items()):
        lines += ["", *_emit(name, emit)]
    lines.append("")
    filled = data["defaults_filled"]
    lines.append("defaults filled in:" if filled else "defaults filled in: none")
    lines.extend(f"  {dotted} = {_show(_lookup(data, dotted))}" for dotted in filled)
    return "\n".join(lines) + "\n"
