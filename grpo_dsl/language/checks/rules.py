"""The semantic rules of learning and evaluation (E0501-E0506, W0002-W0005)."""

from __future__ import annotations

from collections.abc import Iterator

from grpo_dsl.core.templating import template_variables
from grpo_dsl.language import ast
from grpo_dsl.language.attributes import defaults
from grpo_dsl.language.builtins import READ_NAMES
from grpo_dsl.language.checks.context import Context, error, warning
from grpo_dsl.language.diagnostics import Diagnostic
from grpo_dsl.language.queries import names_in, reference

__all__ = [
    "check_group_contrast",
    "check_ground_truth",
    "check_metric_samples",
    "check_evaluation_reward",
    "check_validation_set",
    "check_pruning",
    "check_secrets",
    "check_unsafe_sandbox",
]


def _value(decl: ast.Declaration, name: str) -> ast.Expr | None:
    found = decl.get(name)
    return found.value if found is not None and not isinstance(found.value, ast.Block) else None


def _integer(decl: ast.Declaration, name: str) -> int | None:
    value = _value(decl, name)
    if value is None:
        default = defaults(decl.kind).get(name)
        return default if isinstance(default, int) else None
    return value.value if isinstance(value, ast.Number) and isinstance(value.value, int) else None


def _learns(context: Context) -> Iterator[ast.Learn]:
    return (d for d in context.workspace.all_declarations() if isinstance(d, ast.Learn))


def _evaluates(context: Context) -> Iterator[ast.Evaluate]:
    return (d for d in context.workspace.all_declarations() if isinstance(d, ast.Evaluate))


def check_group_contrast(context: Context) -> Iterator[Diagnostic]:
    """A group needs two rollouts to compare, and different ones."""
    for learn in _learns(context):
        size = _integer(learn, "group_size")
        group = _value(learn, "group_size")
        if size == 1 and group is not None:
            yield error(
                "E0501",
                "`group_size = 1` leaves nothing to compare",
                group.span,
                "the learner contrasts the answers of one group: use `group_size = 2` or more (the paper uses 5)",
            )
        temperature = _value(learn, "temperature")
        if isinstance(temperature, ast.Number) and temperature.value == 0 and size is not None and size > 1:
            yield warning(
                "W0002",
                f"`temperature = 0` makes the {size} rollouts of a group identical",
                temperature.span,
                "sample with some randomness, e.g. `temperature = 0.7`",
            )


def _reward_fields(context: Context, reward: str, seen: set[str]) -> dict[str, ast.Span]:
    """The dataset fields a reward reads, directly or through other rewards."""
    seen.add(reward)
    decl = context.resolve(reward, ast.Reward)
    if not isinstance(decl, ast.Reward):
        return {}
    fields: dict[str, ast.Span] = {}
    if decl.expression is None:
        rubric = _value(decl, "rubric")
        if isinstance(rubric, ast.String):
            for variable in sorted(template_variables(rubric.value) or set()):
                fields.setdefault(variable, rubric.span)
        fields.pop("output", None)
        return fields
    for name in names_in(decl.expression):
        if name.name in READ_NAMES:
            continue
        if isinstance(context.workspace.declarations.get(name.name), ast.Reward):
            if name.name not in seen:
                for field, span in _reward_fields(context, name.name, seen).items():
                    fields.setdefault(field, span)
        elif name.name not in context.workspace.declarations:
            fields.setdefault(name.name, name.span)
    return fields


def _prompt_variables(context: Context, task: str | None) -> set[str]:
    decl = context.resolve(task, ast.Task)
    variables: set[str] = set()
    for attribute in ("system", "prompt"):
        value = _value(decl, attribute) if decl is not None else None
        if isinstance(value, ast.String):
            variables |= template_variables(value.value) or set()
    return variables


def check_ground_truth(context: Context) -> Iterator[Diagnostic]:
    """`ground_truth = false` with a reward that reads a field the prompt does not show,
    or with demos taken from reference answers."""
    for learn in _learns(context):
        flag = _value(learn, "ground_truth")
        if not (isinstance(flag, ast.Bool) and not flag.value):
            continue
        source = _value(learn, "demo_source")
        if isinstance(source, ast.Name) and source.name in ("reference", "both"):
            yield error(
                "E0505",
                f"`demo_source = {source.name}` shows reference answers, but `ground_truth = false`",
                source.span,
                "without ground truth there are no reference answers to show: use `demo_source = rollouts`",
            )
        reward = reference(learn, "reward")
        if reward is None:
            continue
        shown = _prompt_variables(context, reference(learn, "task"))
        hidden = [f for f in _reward_fields(context, reward, set()) if f not in shown]
        if hidden:
            listed = ", ".join(f"`{f}`" for f in hidden)
            yield error(
                "E0502",
                f"`ground_truth = false`, but reward `{reward}` reads the answer field {listed}",
                flag.span,
                "without ground truth no reference answer exists: set `ground_truth = true` or use a reward that reads only the output (e.g. a judge)",
            )


def check_metric_samples(context: Context) -> Iterator[Diagnostic]:
    """`pass@k` and `mean@k` need at least k samples per question."""
    for evaluate in _evaluates(context):
        samples = _integer(evaluate, "samples")
        metrics = _value(evaluate, "metrics")
        if samples is None or not isinstance(metrics, ast.ListExpr):
            continue
        for metric in metrics.items:
            if isinstance(metric, ast.Metric) and metric.k > samples:
                yield error(
                    "E0503",
                    f"`{metric.name}@{metric.k}` needs {metric.k} samples per question, but `samples = {samples}`",
                    metric.span,
                    f"set `samples = {metric.k}` or more",
                )


def check_evaluation_reward(context: Context) -> Iterator[Diagnostic]:
    """An evaluation without `reward` takes the reward of the learns it compares,
    which must exist and agree."""
    for evaluate in _evaluates(context):
        if evaluate.get("reward") is not None:
            continue
        rewards = context.evaluation_reward(evaluate)
        if len(rewards) == 1:
            continue
        if rewards:
            listed = ", ".join(f"`{r}`" for r in rewards)
            message = f"evaluate `{evaluate.name}` compares learns with different rewards ({listed})"
        else:
            message = f"evaluate `{evaluate.name}` has no reward to score with"
        yield error("E0504", message, evaluate.name_span, "add `reward = ...`")


def check_validation_set(context: Context) -> Iterator[Diagnostic]:
    """A validation gate on the training data is no gate."""
    for learn in _learns(context):
        data, validate = reference(learn, "data"), reference(learn, "validate")
        value = _value(learn, "validate")
        if data is not None and data == validate and value is not None:
            yield warning(
                "W0003",
                f"`validate` uses the training data `{data}`",
                value.span,
                "the gate should measure questions the learner did not see: use a held-out dataset",
            )


def check_pruning(context: Context) -> Iterator[Diagnostic]:
    """Pruning measures each item on the validation set, so it needs one."""
    for learn in _learns(context):
        prune = _value(learn, "prune")
        if isinstance(prune, ast.Name) and prune.name == "hurting" and learn.get("validate") is None:
            yield error(
                "E0506",
                f"`prune = hurting` in learn `{learn.name}`, which has no `validate` set",
                prune.span,
                "pruning measures each lesson and demo on held-out questions: add `validate = DATASET`",
            )


def check_secrets(context: Context) -> Iterator[Diagnostic]:
    """An API key written into the program instead of read from the environment."""
    for decl in context.workspace.all_declarations():
        key = _value(decl, "api_key") if isinstance(decl, ast.Model) else None
        if isinstance(key, ast.String) and key.value:
            yield warning(
                "W0004",
                "`api_key` is written in the source",
                key.span,
                'read it from the environment: `api_key = env("API_KEY")`',
            )


def check_unsafe_sandbox(context: Context) -> Iterator[Diagnostic]:
    """`sandbox = "unsafe-process"`: the python tool would run without isolation."""
    for decl in context.workspace.all_declarations():
        value = _value(decl, "sandbox") if isinstance(decl, ast.Model) else None
        if isinstance(value, ast.String) and value.value == "unsafe-process":
            yield warning(
                "W0005",
                f"model `{decl.name}` runs the python tool's code without isolation",
                value.span,
                "model-written code in a plain process can read the API key, your files and the dataset's "
                "answers; keep the default `bubblewrap` wherever it can run (docs/sandbox.md)",
            )
