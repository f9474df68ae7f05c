"""Scoring one rollout: reward expressions, user Python rewards and LLM judges.

`evaluate` walks a reward expression tree of the plan (docs/plan.md "Reward
expressions") with the builtins of `grpo_dsl.language.builtins`; nothing is ever passed to
Python's `eval`. Its rules:

- Names resolve in this order: `output`, `tokens`, `tool_calls`; then other rewards
  of the program (each evaluated at most once per rollout); then the row's dataset
  fields. Any other name is an error.
- Booleans count as 1 and 0, and a text that is entirely a number (`"42"`, `"1,000"`)
  counts as that number in arithmetic and ordering. Any other text there is an error.
- `x / 0` is 0; the result keeps a note of it in `details["notes"]` and no error.
- `==` and `!=` compare numbers by value when both sides are numbers (or one side is
  a number and the other a numeric text), and compare texts otherwise.
- `and` / `or` give a boolean and skip their right side when the left decides;
  `if` evaluates only the branch it takes. Truthiness: `false`, `0`, `""`, `null`
  and empty lists are false.
- The final value must be a number, a boolean or a numeric text. Any failure (an unknown name, a
  builtin's `RewardError`, a failed reward it refers to, a text as the result) gives
  `RewardResult(0.0, error=...)`.

`RewardScorer` scores a rollout under a named reward of the plan. Builtins marked
`isolated` (`math_equal`, `matches`) and `python("file.py:function")` rewards run in
a pool of worker processes with a deadline (so do the Python function tools of
`rollout.tools`, whose result is text or JSON); a worker that overruns it is killed and
replaced. User code is imported only there, at run time, and an exception, a
timeout or a non-number result is a recorded error with reward 0. Judge rewards ask
their model through the injected `LLMClient` (stage `judge`) with the prompt of
`prompts/templates/judge.j2` for `{"score": 0..1, "reason": ...}`: the rubric rendered with the
row's fields and the answer, and the row's fields. Without ground truth (`shown`) the judge sees
only the fields the task's prompt shows, never a reference answer. Budget and fatal endpoint
errors propagate, any other failure of the judge is a recorded error.

Rewards given as Python functions (`functions`, from `grpo_dsl.learn(..., rewards=...)`)
replace the plan's rewards of their names and run in this process (`rewards.functions`),
with the same rules for errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import operator
import os
import signal
import subprocess
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from jinja2 import Template, TemplateError

from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    EndpointError,
    LLMClient,
)
from grpo_dsl.clients.structured import complete_json
from grpo_dsl.core.resources import resource_path
from grpo_dsl.core.templating import sandbox
from grpo_dsl.language.builtins import (
    BUILTINS,
    READ_NAMES,
    Builtin,
    RewardError,
    Value,
    as_number,
    as_text,
)
from grpo_dsl.rewards.functions import (
    RewardFunction,
    call_reward_function,
    describe_exception,
    finite_reward,
    tool_text,
)

__all__ = [
    "Environment",
    "RewardResult",
    "RewardScorer",
    "WorkerPool",
    "evaluate",
    "reward_value",
    "serve_worker",
    "truthy",
]

DEFAULT_TIMEOUT_S = 30.0
WORKER_START_TIMEOUT_S = 120.0
JUDGE_SCHEMA: Mapping[str, Any] = {
    "title": "judgement",
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["score"],
}


@dataclass(frozen=True, slots=True)
class RewardResult:
    """The reward of one rollout: `value` (0.0 when `error` is set) and what explains it.

    `details` may hold `notes` (e.g. a division by zero), `rewards` (the values of the
    other rewards it used) and `reason` (a judge's explanation).
    """

    value: float
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "error": self.error, "details": dict(self.details)}


@dataclass(slots=True)
class Environment:
    """What an expression can see: plain `names`, other rewards, and how to run isolated builtins.

    `reward` returns another reward's value (raising `RewardError` when it failed);
    `run_isolated` runs an `isolated` builtin elsewhere (None: call it in place).
    Notes about the evaluation are appended to `notes`.
    """

    names: Mapping[str, Value]
    reward: Callable[[str], Awaitable[float]] | None = None
    rewards: frozenset[str] = frozenset()
    run_isolated: Callable[[Builtin, tuple[Value, ...]], Awaitable[Value]] | None = None
    notes: list[str] = field(default_factory=list)


def truthy(value: Value) -> bool:
    """Whether a value counts as true in `not`, `and`, `or` and `if`."""
    if isinstance(value, (int, float)):
        return value != 0
    return bool(value)


def _number(value: Value, op: str) -> int | float:
    number = as_number(value)
    if number is None:
        kind = "null" if value is None else f"the text {as_text(value)!r}"
        raise RewardError(f"`{op}` needs numbers, got {kind}")
    return number


def _equal(left: Value, right: Value) -> bool:
    x, y = as_number(left), as_number(right)
    if x is not None and y is not None and not (isinstance(left, str) and isinstance(right, str)):
        return x == y
    return as_text(left) == as_text(right)


_ARITHMETIC: Mapping[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_ORDER: Mapping[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _arithmetic(op: str, left: Value, right: Value, env: Environment) -> Value:
    x, y = _number(left, op), _number(right, op)
    if op == "/" and y == 0:
        env.notes.append(f"division by zero ({as_text(x)} / 0) counted as 0")
        return 0
    try:
        result: int | float = x / y if op == "/" else _ARITHMETIC[op](x, y)
    except OverflowError:
        raise RewardError(f"`{op}` overflowed on {as_text(x)[:40]} and {as_text(y)[:40]}") from None
    return result


def _field(node: Mapping[str, Any], key: str) -> Any:
    try:
        return node[key]
    except (KeyError, TypeError):
        kind = node.get("node") if isinstance(node, Mapping) else node
        raise RewardError(f"malformed expression: a `{kind}` node without `{key}`") from None


async def evaluate(node: Mapping[str, Any], env: Environment) -> Value:
    """The value of an expression tree; raises `RewardError` when it has none."""
    kind = _field(node, "node")
    if kind == "literal":
        value: Value = node.get("value")
        return value
    if kind == "name":
        return await _name(_field(node, "name"), env)
    if kind == "list":
        return [await evaluate(item, env) for item in _field(node, "items")]
    if kind == "call":
        return await _call(_field(node, "function"), _field(node, "args"), env)
    if kind == "unary":
        op, operand = _field(node, "op"), await evaluate(_field(node, "operand"), env)
        if op == "not":
            return not truthy(operand)
        if op == "-":
            return -_number(operand, "-")
        raise RewardError(f"malformed expression: unknown unary operator `{op}`")
    if kind == "binary":
        return await _binary(_field(node, "op"), _field(node, "left"), _field(node, "right"), env)
    if kind == "if":
        chosen = "then" if truthy(await evaluate(_field(node, "condition"), env)) else "else"
        return await evaluate(_field(node, chosen), env)
    raise RewardError(f"malformed expression: unknown node kind `{kind}`")


async def _name(name: str, env: Environment) -> Value:
    if name in READ_NAMES and name in env.names:
        return env.names[name]
    if name in env.rewards and env.reward is not None:
        return await env.reward(name)
    if name in env.names:
        return env.names[name]
    known = ", ".join(sorted({*env.names, *env.rewards}))
    raise RewardError(f"unknown name `{name}` (known names: {known})")


async def _call(function: str, arg_nodes: list[Mapping[str, Any]], env: Environment) -> Value:
    builtin = BUILTINS.get(function)
    if builtin is None:
        raise RewardError(f"unknown function `{function}` (builtins: {', '.join(sorted(BUILTINS))})")
    problem = builtin.arity_error(len(arg_nodes))
    if problem:
        raise RewardError(problem)
    args = tuple([await evaluate(arg, env) for arg in arg_nodes])
    if builtin.isolated and env.run_isolated is not None:
        return await env.run_isolated(builtin, args)
    return builtin.function(*args)


async def _binary(op: str, left_node: Mapping[str, Any], right_node: Mapping[str, Any], env: Environment) -> Value:
    left = await evaluate(left_node, env)
    if op == "and":
        return truthy(left) and truthy(await evaluate(right_node, env))
    if op == "or":
        return truthy(left) or truthy(await evaluate(right_node, env))
    right = await evaluate(right_node, env)
    if op in _ARITHMETIC or op == "/":
        return _arithmetic(op, left, right, env)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in _ORDER:
        return _ORDER[op](_number(left, op), _number(right, op))
    raise RewardError(f"malformed expression: unknown operator `{op}`")


def reward_value(value: Value) -> float:
    """A reward expression's final value as a float; other texts, lists and null are errors."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RewardError(f"the reward is {value}, not a finite number")
    number = as_number(value)
    if number is not None:
        return float(number)
    shown = "null" if value is None else f"{type(value).__name__} {as_text(value)[:80]!r}"
    raise RewardError(f"the reward must be a number or a boolean, got {shown}")


class WorkerPool:
    """Worker processes that run isolated builtins and user rewards under a deadline.

    A worker is a separate Python process (`sys.executable`) in its own process group,
    speaking one JSON line per request and per reply. Workers start on demand (at
    most `size`), are reused, and are killed with their group and replaced when a
    call overruns its deadline or is cancelled.
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = size or min(4, os.cpu_count() or 1)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)

    async def run(self, request: list[Any], timeout_s: float) -> Any:
        """Send one request to a worker; raises `RewardError` on failure, timeout or a dead worker."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.size))
        async with self._slots[1]:
            worker = self._idle.pop() if self._idle else await self._start()
            try:
                status, payload = await worker.call(request, timeout_s)
            except BaseException:
                self._discard(worker)
                raise
            self._idle.append(worker)
        if status == "error":
            raise RewardError(str(payload))
        return payload

    async def _start(self) -> _Worker:
        worker = _Worker()
        self._workers.add(worker)
        try:
            await worker.receive(WORKER_START_TIMEOUT_S)
        except BaseException:
            self._discard(worker)
            raise
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.stop()
        self._workers.discard(worker)

    def close(self) -> None:
        """Stop every worker."""
        self._idle.clear()
        _stop_all(self._workers)


def _stop_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.stop()
    workers.clear()


_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
_WORKER_BOOT = "from grpo_dsl.rewards.scorer import serve_worker; serve_worker()"


class _Worker:
    def __init__(self) -> None:
        path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = self.process.stdin
        self.replies = self.process.stdout.fileno()
        os.set_blocking(self.replies, False)
        self.buffer = bytearray()

    async def call(self, request: list[Any], timeout_s: float) -> tuple[str, Any]:
        try:
            self.requests.write(json.dumps(request, default=str).encode() + b"\n")
            self.requests.flush()
        except OSError:
            raise RewardError(self._died()) from None
        try:
            status, payload = await self.receive(timeout_s)
        except TimeoutError:
            raise RewardError(f"stopped after {timeout_s:g} s without an answer") from None
        return str(status), payload

    async def receive(self, timeout_s: float) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while b"\n" not in self.buffer:
            await self._readable(deadline)
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                raise RewardError(self._died())
            self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return json.loads(line)

    async def _readable(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.replies, wake)
        try:
            await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
        finally:
            loop.remove_reader(self.replies)

    def _died(self) -> str:
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        return f"the worker process died (exit code {code})"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.requests.close()
        assert self.process.stdout is not None
        self.process.stdout.close()


def serve_worker() -> None:
    """The main loop of a worker process: answer JSON-line requests until stdin closes.

    The protocol's streams are moved off file descriptors 0 and 1 first, so what user
    code prints or reads cannot disturb them.
    """
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    import math_verify  # type: ignore[import-untyped]  # noqa: F401  (loaded before the first deadline starts)

    replies.write(b'["ready", null]\n')
    replies.flush()
    modules: dict[tuple[str, float], ModuleType] = {}
    for line in requests:
        replies.write(json.dumps(_answer(json.loads(line), modules), default=str).encode() + b"\n")
        replies.flush()


def _answer(request: list[Any], modules: dict[tuple[str, float], ModuleType]) -> tuple[str, Any]:
    kind, *args = request
    try:
        if kind == "builtin":
            name, values = args
            return "ok", BUILTINS[name].function(*values)
        if kind == "tool":
            path, function, arguments = args
            return "ok", _tool_result(_load(Path(path), function, modules), arguments)
        path, function, output, row = args
        return "ok", _user_reward(_load(Path(path), function, modules), output, row)
    except RewardError as exc:
        return "error", str(exc)
    except Exception as exc:
        return "error", describe_exception(exc)


def _load(path: Path, function: str, modules: dict[tuple[str, float], ModuleType]) -> Callable[..., Any]:
    if not path.is_file():
        raise RewardError(f"the file {path} does not exist")
    key = (str(path), path.stat().st_mtime)
    module = modules.get(key)
    if module is None:
        spec = importlib.util.spec_from_file_location(f"grpo_user_reward_{len(modules)}", path)
        if spec is None or spec.loader is None:
            raise RewardError(f"{path} cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        spec.loader.exec_module(module)
        modules[key] = module
    target = getattr(module, function, None)
    if not callable(target):
        raise RewardError(f"{path.name} has no function `{function}`")
    return target  # type: ignore[no-any-return]


def _user_reward(function: Callable[..., Any], output: str, row: dict[str, Any]) -> float:
    return finite_reward(function, function(output, row))


def _tool_result(function: Callable[..., Any], arguments: dict[str, Any]) -> str:
    """What a tool function returns, as the text the model reads (`tool_text`)."""
    try:
        result = function(**arguments)
    except TypeError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:  # the call itself: bad arguments
            raise RewardError(f"bad arguments for `{function.__name__}`: {exc}") from None
        raise
    return tool_text(function, result)


class RewardScorer:
    """Scores rollouts under the rewards of a plan (`plan.rewards()`).

    `base_dir` is the folder of the program (user reward paths are relative to it);
    `client` answers judge rewards; `models` is the plan's `models`, read for each
    judge model's `structured` setting. `shown` (None: every field) is the fields a
    judge may see: without ground truth, those of the task's prompt. `functions`
    are Python callables that replace the rewards of their names
    (`rewards.functions`). `timeout_s` bounds every user reward and isolated builtin
    call. Use `close()` (or `async with`) to stop the workers.
    """

    def __init__(
        self,
        rewards: Mapping[str, Mapping[str, Any]],
        *,
        base_dir: Path,
        client: LLMClient | None = None,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        workers: int | None = None,
        shown: frozenset[str] | None = None,
        functions: Mapping[str, RewardFunction] | None = None,
    ) -> None:
        for name, reward in rewards.items():
            if reward.get("kind") not in ("expression", "python", "judge"):
                raise ValueError(f"reward `{name}` has an unknown kind {reward.get('kind')!r}")
        self.rewards = dict(rewards)
        self.base_dir = Path(base_dir)
        self.client = client
        self.models = dict(models or {})
        self.timeout_s = timeout_s
        self.shown = shown
        self.functions = dict(functions or {})
        self.pool = WorkerPool(workers)
        self._judge_template: Template | None = None

    async def __aenter__(self) -> RewardScorer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes."""
        self.pool.close()

    async def score(
        self, reward_name: str, output: str, row: Mapping[str, Any], *, tokens: int, tool_calls: int
    ) -> RewardResult:
        """The reward `reward_name` of one rollout; failures are recorded, never raised.

        Raises KeyError for a name that is not a reward of the plan, and lets
        `BudgetExceeded` and `EndpointError` from a judge through.
        """
        if reward_name not in self.rewards:
            raise KeyError(f"unknown reward {reward_name!r}")
        rollout = _Rollout(self, output, dict(row), tokens, tool_calls)
        return await rollout.result(reward_name)

    async def _run_isolated(self, builtin: Builtin, args: tuple[Value, ...]) -> Value:
        try:
            value: Value = await self.pool.run(["builtin", builtin.name, list(args)], self.timeout_s)
        except RewardError as exc:
            raise RewardError(f"{builtin.name}(): {exc}") from None
        return value

    async def _python(self, reward: Mapping[str, Any], output: str, row: dict[str, Any]) -> RewardResult:
        path = (self.base_dir / str(reward["path"])).resolve()
        where = f"{reward['path']}:{reward['function']}"
        try:
            value = await self.pool.run(["python", str(path), str(reward["function"]), output, row], self.timeout_s)
        except RewardError as exc:
            return RewardResult(0.0, f"python reward {where}: {exc}")
        return RewardResult(float(value))

    async def _function(self, name: str, output: str, row: dict[str, Any]) -> RewardResult:
        try:
            value = await call_reward_function(self.functions[name], output, dict(row), self.timeout_s)
        except RewardError as exc:
            return RewardResult(0.0, f"python reward `{name}`: {exc}")
        return RewardResult(value)

    async def _judge(self, name: str, reward: Mapping[str, Any], output: str, row: dict[str, Any]) -> RewardResult:
        if self.client is None:
            return RewardResult(0.0, f"judge reward `{name}` needs an LLM client")
        if self._judge_template is None:
            self._judge_template = sandbox().from_string(resource_path("prompts/templates/judge.j2").read_text(encoding="utf-8"))
        fields = row if self.shown is None else {k: v for k, v in row.items() if k in self.shown}
        try:
            rubric = sandbox().from_string(str(reward["rubric"])).render({**fields, "output": output})
        except TemplateError as exc:
            return RewardResult(0.0, f"judge reward `{name}`: its rubric cannot be rendered: {exc}")
        prompt = self._judge_template.render(rubric=rubric, output=output, fields=fields).strip()
        model = str(reward["model"])
        request = ChatRequest(
            model=model, messages=({"role": "user", "content": prompt},), temperature=0.0, stage="judge"
        )
        structured = str(self.models.get(model, {}).get("structured") or "json_schema")
        try:
            reply = await complete_json(self.client, request, JUDGE_SCHEMA, structured=structured)
        except (BudgetExceeded, EndpointError):
            raise
        except Exception as exc:
            return RewardResult(0.0, f"judge `{model}` failed: {exc}")
        return RewardResult(float(reply["score"]), None, {"reason": str(reply.get("reason", ""))})


class _Rollout:
    """The rewards of one rollout, each computed at most once."""

    def __init__(self, scorer: RewardScorer, output: str, row: dict[str, Any], tokens: int, tool_calls: int):
        self.scorer = scorer
        self.output = output
        self.row = row
        self.names: dict[str, Value] = {**row, "output": output, "tokens": tokens, "tool_calls": tool_calls}
        self.results: dict[str, RewardResult] = {}
        self.in_progress: list[str] = []

    async def result(self, name: str) -> RewardResult:
        if name in self.in_progress:
            cycle = " -> ".join([*self.in_progress[self.in_progress.index(name) :], name])
            return RewardResult(0.0, f"rewards refer to each other in a cycle: {cycle}")
        if name not in self.results:
            self.in_progress.append(name)
            try:
                self.results[name] = await self._compute(name)
            finally:
                self.in_progress.remove(name)
        return self.results[name]

    async def _compute(self, name: str) -> RewardResult:
        if name in self.scorer.functions:
            return await self.scorer._function(name, self.output, self.row)
        reward = self.scorer.rewards[name]
        kind = reward["kind"]
        if kind == "python":
            return await self.scorer._python(reward, self.output, self.row)
        if kind == "judge":
            return await self.scorer._judge(name, reward, self.output, self.row)
        used: dict[str, float] = {}

        async def reference(other: str) -> float:
            result = await self.result(other)
            if result.error is not None:
                raise RewardError(f"it uses reward `{other}`, which failed: {result.error}")
            used[other] = result.value
            return result.value

        env = Environment(
            names=self.names,
            reward=reference,
            rewards=frozenset(self.scorer.rewards),
            run_isolated=self.scorer._run_isolated,
        )
        try:
            value = reward_value(await evaluate(reward["expression"], env))
        except RewardError as exc:
            return RewardResult(0.0, f"reward `{name}`: {exc}")
        details: dict[str, Any] = {}
        if env.notes:
            details["notes"] = env.notes
        if used:
            details["rewards"] = used
        return RewardResult(value, None, details)
