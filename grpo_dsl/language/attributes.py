"""The attribute table of the language: every attribute of every declaration kind.

This table is the single source of truth for the checks (names, types, ranges,
required attributes), the compiler (defaults) and the reference in
`docs/language.md`. A nested block (`price`, `budget`) has its own attribute table;
`fields` is a mapping whose keys the user chooses.

>>> lookup("learn", "group_size").required
True
>>> defaults("policy")["capacity"]
48
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from grpo_dsl.language.literals import is_name

__all__ = [
    "AttributeSpec",
    "Kind",
    "SPECS",
    "METRIC_NAMES",
    "attribute_names",
    "defaults",
    "lookup",
    "required",
    "written_word",
]

Kind = Literal[
    "string",  # a string literal
    "env_string",  # a string literal or env("VAR"[, "default"])
    "template",  # a Jinja2 template over the dataset's fields
    "path",  # a file or folder path, relative to the file that contains it
    "paths",  # a list of file paths, each relative to the file that contains it
    "version",  # a semantic version string "MAJOR.MINOR.PATCH"
    "number",
    "integer",
    "bool",
    "ref",  # a reference to a declaration of one of `refers_to`
    "enum",  # one word of `words` (in quotes when it is not a name, e.g. "unsafe-process")
    "words",  # a list of words of `words`
    "tools",  # a list of tools: `python` or the name of a `tool` declaration
    "strings",  # a list of string literals
    "metrics",  # a list of metrics: `mean`, `mean@k`, `pass@k`
    "libraries",  # a list of libraries: `none`, a learn name, or "module/path@version"
    "library",  # one learn name or "module/path@version"
    "python",  # python("file.py:function")
    "schema",  # schema("file.json"): a JSON schema file
    "block",  # a nested block with its own attributes
    "mapping",  # a nested block of `name = "string"` with free names
]

METRIC_NAMES: tuple[str, ...] = ("mean", "pass")


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute: its type, whether it is required, its default and its range.

    `minimum`/`maximum` bound numbers inclusively unless `exclusive_minimum` is set;
    `default` is the plain Python value the compiler fills in (None: absent).
    """

    name: str
    kind: Kind
    doc: str
    required: bool = False
    default: object = None
    refers_to: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    block: tuple[AttributeSpec, ...] = ()

    def describe(self) -> str:
        """The type in words, as diagnostics and the reference print it."""
        if self.kind == "integer":
            if self.minimum == 1:
                return "a positive integer"
            if self.minimum == 0:
                return "a non-negative integer"
            return "an integer"
        if self.kind == "number":
            low = "(" if self.exclusive_minimum else "["
            if self.minimum is not None and self.maximum is not None:
                return f"a number in {low}{_number(self.minimum)}, {_number(self.maximum)}]"
            if self.minimum is not None:
                return "a positive number" if self.exclusive_minimum and self.minimum == 0 else "a non-negative number"
            return "a number"
        if self.kind == "ref":
            return "the name of " + " or ".join(f"a {kind}" for kind in self.refers_to)
        if self.kind in ("enum", "words"):
            choices = ", ".join(f"`{written_word(w)}`" for w in self.words)
            return f"one of {choices}" if self.kind == "enum" else f"a list of {choices}"
        return _KIND_WORDS[self.kind]


def written_word(word: str) -> str:
    """A word as a program writes it: bare when it is a name, else in quotes."""
    return word if is_name(word) else f'"{word}"'


_KIND_WORDS: dict[str, str] = {
    "string": "a string",
    "env_string": 'a string or `env("VAR")`',
    "template": "a Jinja2 template string",
    "path": "a path string",
    "paths": "a list of path strings",
    "strings": "a list of strings",
    "tools": "a list of tools: `python` or declared tool names",
    "version": 'a version string such as `"1.2.0"`',
    "bool": "`true` or `false`",
    "metrics": "a list of metrics (`mean`, `mean@k`, `pass@k`)",
    "libraries": '`none`, a learn name, or a module `"path@version"`, in a list',
    "library": 'a learn name or a module `"path@version"`',
    "python": '`python("file.py:function")`',
    "schema": '`schema("file.json")`',
    "block": "a block",
    "mapping": 'a block of `name = "column"`',
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _positive(name: str, doc: str, default: int | None = None, *, required: bool = False) -> AttributeSpec:
    return AttributeSpec(name, "integer", doc, required=required, default=default, minimum=1)


_PRICE = (
    AttributeSpec("input", "number", "USD per million prompt tokens", default=0.0, minimum=0),
    AttributeSpec("output", "number", "USD per million completion tokens", default=0.0, minimum=0),
)

def _max_failures(doc: str) -> AttributeSpec:
    return AttributeSpec("max_failures", "number", doc, default=0.1, minimum=0, maximum=1)


_MCP = (
    AttributeSpec("command", "strings", "the program and arguments that start the server over stdio"),
    AttributeSpec("url", "string", "the address of a server speaking streamable HTTP"),
)

_BUDGET = (
    AttributeSpec("usd", "number", "stop the run cleanly once this much has been spent", minimum=0, exclusive_minimum=True),
    _positive("tokens", "stop after this many tokens (prompt and completion)"),
    _positive("calls", "stop after this many LLM calls"),
)

SPECS: dict[str, tuple[AttributeSpec, ...]] = {
    "model": (
        AttributeSpec("name", "env_string", "the model name sent to the endpoint", required=True),
        AttributeSpec("base_url", "env_string", "OpenAI-compatible endpoint; absent: the embedded local model"),
        AttributeSpec("api_key", "env_string", 'the API key, normally `env("VAR")`'),
        _positive("concurrency", "requests in flight at once", 8),
        _positive("rpm", "requests per minute (absent: unlimited)"),
        _positive("tpm", "tokens per minute (absent: unlimited)"),
        AttributeSpec("timeout", "number", "seconds before a request is abandoned", default=600.0, minimum=0, exclusive_minimum=True),
        AttributeSpec("max_retries", "integer", "retries of a failed request, with backoff", default=6, minimum=0),
        AttributeSpec("price", "block", "USD per million tokens", default={"input": 0.0, "output": 0.0}, block=_PRICE),
        AttributeSpec(
            "structured",
            "enum",
            "how the learner's JSON answers are requested",
            default="json_schema",
            words=("json_schema", "json_object", "text"),
        ),
        AttributeSpec("gguf", "path", "another GGUF file for the embedded local model"),
        AttributeSpec(
            "sandbox",
            "enum",
            "how the python tool isolates the code this model writes (docs/sandbox.md)",
            default="bubblewrap",
            words=("bubblewrap", "unsafe-process"),
        ),
    ),
    "dataset": (
        AttributeSpec("source", "path", "a `.jsonl`, `.json` or `.csv` file", required=True),
        AttributeSpec("fields", "mapping", "program names mapped to the file's columns", default={}),
        _positive("limit", "keep the first N rows (after the shuffle)"),
        AttributeSpec("shuffle", "bool", "shuffle the rows (seeded) before `limit`", default=False),
    ),
    "task": (
        AttributeSpec("model", "ref", "the model that answers", required=True, refers_to=("model",)),
        AttributeSpec("prompt", "template", "the user turn", required=True),
        AttributeSpec("system", "template", "the system turn"),
        AttributeSpec(
            "experiences",
            "enum",
            "where the experience library is placed",
            default="system",
            words=("system", "user", "none"),
        ),
        AttributeSpec("temperature", "number", "sampling temperature for evaluation and deployment", default=0.7, minimum=0, maximum=2),
        AttributeSpec("top_p", "number", "nucleus sampling", default=1.0, minimum=0, maximum=1, exclusive_minimum=True),
        _positive("max_tokens", "completion tokens per answer", 1024),
        _positive("answer_tokens", "the usual length of an answer, for the expected cost (absent: the reference answers' length)"),
        AttributeSpec("tools", "tools", "tools the model may call: `python` or declared tools", default=[]),
        AttributeSpec("files", "paths", "files the python tool may read, copied read-only into its folder", default=[]),
        _positive("max_turns", "turns of a tool-using answer", 8),
        AttributeSpec("response", "schema", "the answer is JSON following this JSON schema (absent: text)"),
        AttributeSpec(
            "demos_placement",
            "enum",
            "where the library's demos go: earlier turns before the question, or the system turn",
            default="turns",
            words=("turns", "system"),
        ),
    ),
    "tool": (
        AttributeSpec("function", "python", "a Python function the model may call; its schema is read from its signature"),
        AttributeSpec("mcp", "block", "an MCP server whose tools the model may call", block=_MCP),
        AttributeSpec("timeout", "number", "seconds one call may take before it is stopped", default=30.0, minimum=0, exclusive_minimum=True),
    ),
    "reward": (
        AttributeSpec("judge", "ref", "the model that scores an answer", required=True, refers_to=("model",)),
        AttributeSpec("rubric", "template", "what the judge scores, over the dataset's fields", required=True),
    ),
    "policy": (
        AttributeSpec(
            "ops",
            "words",
            "operations the learner may apply (`keep` is always allowed)",
            default=["add", "modify", "delete"],
            words=("add", "modify", "delete", "keep"),
        ),
        _positive("max_per_group", "operations one group may propose", 2),
        _positive("capacity", "experiences the library may hold", 48),
        _positive("max_words", "words in one experience", 32),
        AttributeSpec(
            "on_full",
            "enum",
            "what an add does when the library is full",
            default="reject",
            words=("reject", "evict_oldest", "evict_least_used"),
        ),
        AttributeSpec("style", "string", "guidance on phrasing given to the learner"),
        AttributeSpec("rule", "python", "user code replacing the built-in apply step"),
        AttributeSpec("demos", "integer", "worked examples the library may hold, chosen by group comparison", default=0, minimum=0),
    ),
    "learn": (
        AttributeSpec("task", "ref", "the task to improve", required=True, refers_to=("task",)),
        AttributeSpec("data", "ref", "the training questions", required=True, refers_to=("dataset",)),
        AttributeSpec("reward", "ref", "how a rollout is scored", required=True, refers_to=("reward",)),
        _positive("group_size", "rollouts per question (G); at least 2", required=True),
        _positive("batch_size", "questions per step", 8),
        _positive("epochs", "passes over the data", 1),
        AttributeSpec("temperature", "number", "rollout temperature while learning", default=0.7, minimum=0, maximum=2),
        AttributeSpec("ground_truth", "bool", "the learner sees the reference answers", default=True),
        AttributeSpec("learner", "ref", "the model that summarises and updates (absent: the task's)", refers_to=("model",)),
        AttributeSpec("policy", "ref", "how the library may change (absent: the default policy)", refers_to=("policy",)),
        AttributeSpec("validate", "ref", "a held-out set gating each step", refers_to=("dataset",)),
        AttributeSpec("seed", "integer", "seed of shuffles and sampling", default=0, minimum=0),
        AttributeSpec(
            "budget",
            "block",
            "limits that stop the run cleanly",
            default={"usd": None, "tokens": None, "calls": None},
            block=_BUDGET,
        ),
        AttributeSpec("summarize", "bool", "summarise rollouts before comparing them", default=True),
        AttributeSpec("init", "library", "the library to start from (absent: empty)"),
        AttributeSpec(
            "demo_source",
            "enum",
            "where demos come from: winning rollouts, reference answers of unsolved questions, or both",
            default="rollouts",
            words=("rollouts", "reference", "both"),
        ),
        AttributeSpec(
            "prune",
            "enum",
            "at the validation gate, delete the lessons and demos whose measured utility is below zero beyond noise",
            default="none",
            words=("none", "hurting"),
        ),
        _positive("repeats", "learn this many times, with seeds `seed`, `seed + 1`, ...", 1),
        _max_failures("the share of a step's rollouts, or learner calls, that may fail (after retries) before the run fails"),
    ),
    "evaluate": (
        AttributeSpec("task", "ref", "the task to evaluate", required=True, refers_to=("task",)),
        AttributeSpec("data", "ref", "the evaluation questions", required=True, refers_to=("dataset",)),
        AttributeSpec("reward", "ref", "how an answer is scored (absent: the reward of the compared learn)", refers_to=("reward",)),
        _positive("samples", "answers per question", 1),
        AttributeSpec("metrics", "metrics", "what is reported", default=["mean"]),
        AttributeSpec("compare", "libraries", "the libraries compared", default=["none"]),
        AttributeSpec("seed", "integer", "seed of sampling", default=0, minimum=0),
        AttributeSpec(
            "ablate",
            "enum",
            "how `grpo ablate` measures each lesson's and demo's utility: leave one out, or Shapley values",
            default="loo",
            words=("loo", "shapley"),
        ),
        _positive("subsets", "the most library subsets a Shapley ablation evaluates (all of them when they fit)", 64),
        _max_failures("the share of a library's samples that may fail (after retries) before the evaluation fails"),
    ),
    "emit": (
        AttributeSpec("library", "ref", "the learn whose library is written", required=True, refers_to=("learn",)),
        AttributeSpec("path", "path", "the module folder", required=True),
        AttributeSpec("formats", "words", "files written", default=["json"], words=("json", "jinja", "markdown", "prompty")),
        AttributeSpec("name", "string", "the module name (absent: the emit's name)"),
        AttributeSpec("version", "version", "force this version; it must be higher than the last"),
    ),
}


def lookup(kind: str, name: str) -> AttributeSpec | None:
    """The attribute `name` of declaration kind `kind` (a dotted `kind.block` for a
    nested block, e.g. `model.price`), or None when there is no such attribute."""
    specs = _nested(kind)
    return next((spec for spec in specs if spec.name == name), None)


def _nested(kind: str) -> tuple[AttributeSpec, ...]:
    outer, _, inner = kind.partition(".")
    specs = SPECS[outer]
    if inner:
        found = next((spec for spec in specs if spec.name == inner), None)
        return found.block if found is not None else ()
    return specs


def attribute_names(kind: str) -> tuple[str, ...]:
    """The names of the attributes of `kind` (or of a nested `kind.block`)."""
    return tuple(spec.name for spec in _nested(kind))


def required(kind: str) -> tuple[str, ...]:
    """The names of the required attributes of `kind`."""
    return tuple(spec.name for spec in _nested(kind) if spec.required)


def defaults(kind: str) -> dict[str, object]:
    """Every optional attribute of `kind` with the value the compiler fills in."""
    return {spec.name: _copy(spec.default) for spec in _nested(kind) if not spec.required}


def _copy(value: object) -> object:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
