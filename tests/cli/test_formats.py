"""Every verb's `--format json` prints one document that validates against the schema the
package ships for it (`grpo_dsl/cli/schemas/`; the plan's is `schemas/plan.schema.json`).

The documents come from real commands, in their own processes, on the starter project of
`grpo init` run against the test endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.endpoint import Endpoint
from test_init import STARTER_WORLD, grpo

from grpo_dsl.cli.console import schema_path
from grpo_dsl.cli.main import SUBCOMMANDS
from grpo_dsl.clients.local import CACHE_ENV
from grpo_dsl.modules import load_module

MODULE = Path("prompts") / "word_problems"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, _endpoint_process: Endpoint) -> Iterator[dict[str, Any]]:
    """The starter project, learned and evaluated against the test endpoint: the folder,
    its environment (with the response cache its runs share) and the JSON documents of
    `init`, `run` and `eval`."""
    _endpoint_process.configure(script=STARTER_WORLD)
    root = tmp_path_factory.mktemp("formats")
    env = {"GRPO_BASE_URL": _endpoint_process.base_url, CACHE_ENV: str(root / "cache")}
    documents = {"init": json_of(grpo("init", "project", "--format", "json", cwd=root))}
    folder = root / "project"
    (folder / "policy.grpo").write_text("grpo 1\n\npolicy small {\n  capacity = 1\n}\n")
    documents["run"] = json_of(grpo("run", "starter.grpo", "--format", "json", cwd=folder, env=env))
    documents["eval"] = json_of(grpo("eval", "starter.grpo", "--format", "json", cwd=folder, env=env))
    yield {"folder": folder, "env": env, "documents": documents}
    _endpoint_process.configure()


def json_of(done: Any) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def validate(verb: str, document: Any) -> None:
    schema = json.loads(schema_path(verb).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(document)]
    assert not errors, errors


def run_dir(project: dict[str, Any]) -> str:
    return str(project["documents"]["run"]["run_dir"])


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["init", "run", "eval"])
def test_the_documents_of_the_verbs_that_made_the_project(verb: str, project: dict[str, Any]) -> None:
    document = project["documents"][verb]
    validate(verb, document)
    if verb != "init":
        assert document["status"] == "completed"


@pytest.mark.slow
def test_the_run_document_lists_its_steps_and_what_it_emitted(project: dict[str, Any]) -> None:
    document = project["documents"]["run"]
    assert [s["step"] for s in document["steps"]] == [1, 2]
    assert [e["emit"] for e in document["emitted"]] == ["word_problem_prompts"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("verb", "arguments"),
    [
        ("check", lambda p: ["check", "."]),
        ("fmt", lambda p: ["fmt", "--check", "--diff", "."]),
        ("plan", lambda p: ["plan", "starter.grpo"]),
        ("emit", lambda p: ["emit", "starter.grpo", "--emit", "word_problem_prompts", "--from", run_dir(p)]),
        ("report", lambda p: ["report", run_dir(p), "-o", "report.html"]),
        ("replay", lambda p: ["replay", run_dir(p), "--policy", "policy.grpo:small", "--offline"]),
        ("ablate", lambda p: ["ablate", "starter.grpo"]),
        ("module-show", lambda p: ["module", "show", str(MODULE)]),
        ("module-log", lambda p: ["module", "log", str(MODULE)]),
        ("module-diff", lambda p: ["module", "diff", f"{MODULE}@1.0.0", str(MODULE)]),
        ("module-blame", lambda p: ["module", "blame", str(MODULE), load_module(p["folder"] / MODULE).library.experiences[0].id]),
        ("module-package", lambda p: ["module", "package", str(MODULE), "--name", "word-problem-prompts", "--out", "dist"]),
        ("cache-info", lambda p: ["cache", "info"]),
        ("cache-prune", lambda p: ["cache", "prune", "--older-than", "30d"]),
    ],
)
def test_every_verb_prints_a_document_its_schema_accepts(verb: str, arguments: Any, project: dict[str, Any]) -> None:
    document = json_of(grpo(*arguments(project), "--format", "json", cwd=project["folder"], env=project["env"]))
    validate(verb, document)


@pytest.mark.slow
def test_the_cache_document_counts_what_the_runs_of_the_project_stored(project: dict[str, Any]) -> None:
    document = json_of(grpo("cache", "info", "--format", "json", cwd=project["folder"], env=project["env"]))
    validate("cache-info", document)
    assert document["path"] == str(Path(project["env"][CACHE_ENV]) / "responses.sqlite3")
    assert document["found"] and document["entries"] == sum(document["namespaces"].values()) > 0
    assert any(space.startswith("rollout/") for space in document["namespaces"])
    pruned = json_of(grpo("cache", "prune", "--older-than", "30d", "--format", "json", cwd=project["folder"], env=project["env"]))
    validate("cache-prune", pruned)
    assert (pruned["removed"], pruned["entries"]) == (0, document["entries"])


def test_an_empty_cache_folder_has_a_document_too(tmp_path: Path) -> None:
    done = grpo("cache", "info", "--format", "json", "--dir", str(tmp_path), cwd=tmp_path)
    document = json_of(done)
    validate("cache-info", document)
    assert (document["found"], document["entries"], document["last_run"]) == (False, 0, None)


def test_every_verb_with_a_format_has_a_schema() -> None:
    for subcommand in SUBCOMMANDS:
        if subcommand.common:
            assert schema_path(subcommand.name).is_file(), subcommand.name
    for action in ("show", "log", "diff", "blame", "package", "export"):
        assert schema_path(f"module-{action}").is_file()
    for action in ("info", "prune"):
        assert schema_path(f"cache-{action}").is_file()


def test_a_document_that_breaks_its_schema_is_refused(tmp_path: Path) -> None:
    from grpo_dsl.cli.console import Console
    from jsonschema import ValidationError

    with pytest.raises(ValidationError):
        Console(format="json").document("init", {"folder": str(tmp_path)})
