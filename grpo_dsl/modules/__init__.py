"""Prompt modules: emit a learned library as a versioned module, load and render it, read its history.

It owns writing versions (`emit`, with the Prompty format in `prompty`), loading and
rendering them (`loader`), the version rule (`versioning`), show/log/diff/blame
(`history`), wheels (`package`) and the MLflow Prompt Registry (`mlflow_registry`). It imports `runs`, `plan`,
`prompts`, `library` and `core`.

>>> import grpo_dsl
>>> module = grpo_dsl.load_module("prompts/math", version="^1.2")   # doctest: +SKIP
>>> module.render(question="What is 2 + 2?")                         # doctest: +SKIP
"""

from grpo_dsl.modules.emit import (
    FORMATS,
    EmitResult,
    ModelRef,
    ModuleSpec,
    Origin,
    ablation_record,
    emit_from_run,
    emit_module,
    evaluation_record,
    record_ablation,
    record_evaluation,
    template_fields,
)
from grpo_dsl.modules.history import (
    Blame,
    BlameEvent,
    ExperienceDiff,
    GroupEvidence,
    Modified,
    ModuleDiff,
    blame,
    diff_experiences,
    diff_modules,
    format_blame,
    format_diff,
    format_log,
    format_show,
    module_log,
    parse_reference,
)
from grpo_dsl.modules.loader import (
    IndexEntry,
    ModelMismatchWarning,
    ModuleError,
    ModuleIndex,
    PromptModule,
    load_module,
    read_index,
)
from grpo_dsl.modules.mlflow_registry import RegisteredVersion, export_to_mlflow
from grpo_dsl.modules.package import package_module
from grpo_dsl.modules.versioning import (
    Change,
    ModuleContent,
    VersionError,
    compare_content,
    next_version,
    select_version,
)

__all__ = [
    "FORMATS",
    "Blame",
    "BlameEvent",
    "Change",
    "EmitResult",
    "ExperienceDiff",
    "GroupEvidence",
    "IndexEntry",
    "ModelMismatchWarning",
    "ModelRef",
    "Modified",
    "ModuleContent",
    "ModuleDiff",
    "ModuleError",
    "ModuleIndex",
    "ModuleSpec",
    "Origin",
    "PromptModule",
    "RegisteredVersion",
    "VersionError",
    "ablation_record",
    "blame",
    "compare_content",
    "diff_experiences",
    "diff_modules",
    "emit_from_run",
    "emit_module",
    "evaluation_record",
    "export_to_mlflow",
    "format_blame",
    "format_diff",
    "format_log",
    "format_show",
    "load_module",
    "module_log",
    "next_version",
    "package_module",
    "parse_reference",
    "read_index",
    "record_ablation",
    "record_evaluation",
    "select_version",
    "template_fields",
]
