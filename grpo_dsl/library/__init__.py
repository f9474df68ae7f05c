"""The experience library and the update step that changes it.

A `Library` is an immutable value: its experiences in order, every experience it
ever retired (`history`), a version number and the next id to hand out. The
learner proposes typed `Operation`s (add, modify, delete, keep); an update rule
turns a library and a list of operations into the next library and an
`ApplyReport` that says, for every operation, whether it was applied and, if not,
why. `apply` is the built-in rule; a policy may name another one with
`rule = python("rules.py:apply")`, loaded by `load_rule`, with exactly the same
signature (`Rule`). Nothing here calls an LLM or touches files.

>>> library, report = apply(Library.empty(), [Operation.add("Check the units.")],
...                         PolicySpec(), ApplyContext(step=1))
>>> print(library.render())
[E1] Check the units.
"""

from grpo_dsl.library.apply import (
    ApplyContext,
    ApplyReport,
    OpOutcome,
    PolicySpec,
    Rule,
    RuleRef,
    apply,
)
from grpo_dsl.library.demos import (
    DEMO_SOURCES,
    Demo,
    DemoSource,
    Example,
    demo_number,
    text_shape,
)
from grpo_dsl.library.diff import DiffSegment, marked_word_diff, word_diff
from grpo_dsl.library.experiences import LIBRARY_SCHEMA, Experience, Library
from grpo_dsl.library.operations import (
    DEMO_KINDS,
    LESSON_KINDS,
    ON_FULL_MODES,
    OPERATION_KINDS,
    OPERATIONS_SCHEMA,
    OnFull,
    Operation,
    OperationSource,
    OpKind,
    ParsedOperations,
    cited_ids,
    id_number,
    normalize_text,
    operations_from_json,
    word_count,
)
from grpo_dsl.library.provenance import ProvenanceEntry
from grpo_dsl.library.rules import RuleError, load_rule

__all__ = [
    "ApplyContext",
    "ApplyReport",
    "DEMO_KINDS",
    "DEMO_SOURCES",
    "Demo",
    "DemoSource",
    "DiffSegment",
    "Example",
    "Experience",
    "LESSON_KINDS",
    "LIBRARY_SCHEMA",
    "Library",
    "ON_FULL_MODES",
    "OPERATIONS_SCHEMA",
    "OPERATION_KINDS",
    "OnFull",
    "OpKind",
    "OpOutcome",
    "Operation",
    "OperationSource",
    "ParsedOperations",
    "PolicySpec",
    "ProvenanceEntry",
    "Rule",
    "RuleError",
    "RuleRef",
    "apply",
    "cited_ids",
    "demo_number",
    "id_number",
    "load_rule",
    "marked_word_diff",
    "normalize_text",
    "operations_from_json",
    "word_count",
    "text_shape",
    "word_diff",
]
