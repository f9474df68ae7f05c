"""`grpo module export --to mlflow`: every version of a module reaches a real MLflow
tracking server (SQLite store, on loopback), and MLflow's own API loads back the same
template, experiences and tags, and formats the messages `load_module` renders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from mlflow import MlflowClient
from support.mlflow_server import MlflowServer
from support.sample_modules import EVALUATION, emit_sample

from grpo_dsl import load_module
from grpo_dsl.cli import main
from grpo_dsl.cli.console import schema_path
from grpo_dsl.modules import ModuleError, RegisteredVersion, export_to_mlflow, read_index, record_evaluation
from grpo_dsl.modules.mlflow_registry import mlflow_template


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    running = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def exported(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[RegisteredVersion]]:
    """A module with two versions (lessons in the system turn, demos as turns), exported."""
    path = emit_sample(tmp_path_factory.mktemp("modules"), "system", "turns", versions=2)
    record_evaluation(path, "1.0.1", "heldout", EVALUATION)
    return path, server.uri, export_to_mlflow(path, tracking_uri=server.uri)


def _load(uri: str, name: str, version: int) -> Any:
    mlflow.set_tracking_uri(uri)
    return mlflow.genai.load_prompt(f"prompts:/{name}/{version}")


def test_every_version_is_registered_in_order(exported: tuple[Path, str, list[RegisteredVersion]]) -> None:
    path, uri, registered = exported
    assert [(r.module_version, r.prompt, r.prompt_version, r.created) for r in registered] == [
        ("1.0.0", "dates-system-turns", 1, True),
        ("1.0.1", "dates-system-turns", 2, True),
    ]
    for number, entry in enumerate(read_index(path).versions, start=1):
        module = load_module(path, entry.version)
        prompt = _load(uri, "dates-system-turns", number)
        assert prompt.template == mlflow_template(module)
        assert prompt.tags["grpo.version"] == module.version
        assert prompt.tags["grpo.sha256"] == module.sha256
        assert prompt.tags["grpo.model"] == "world-model"
        assert prompt.tags["grpo.experiences.count"] == str(len(module.experiences)) == "2"
        assert json.loads(prompt.tags["grpo.experiences"]) == [{"id": e.id, "text": e.text} for e in module.experiences]
        assert json.loads(prompt.tags["grpo.demos"]) == list(module.library.demo_entries())
        assert prompt.model_config == {"model_name": "world-model", "temperature": 0.7}
        assert prompt.format(day=3, month=4, style="ISO") == module.render(day=3, month=4, style="ISO")
    latest = _load(uri, "dates-system-turns", 2)
    assert latest.tags["grpo.parent"] == "1.0.0"
    assert json.loads(latest.tags["grpo.evaluation"]) == {"heldout": EVALUATION}
    assert latest.commit_message == "dates-system-turns 1.0.1: a patch change from 1.0.0; modified E1; removed D2"


def test_exporting_again_registers_nothing_new(exported: tuple[Path, str, list[RegisteredVersion]], capsys: pytest.CaptureFixture[str]) -> None:
    path, uri, _ = exported
    assert main(["module", "export", str(path), "--to", "mlflow", "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path} 1.0.0: already registered as dates-system-turns version 1",
        f"{path} 1.0.1: already registered as dates-system-turns version 2",
    ]
    assert len(MlflowClient(tracking_uri=uri).search_prompt_versions("dates-system-turns")) == 2


def test_the_json_document_lists_each_version_and_its_prompt_version(
    exported: tuple[Path, str, list[RegisteredVersion]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, uri, _ = exported
    assert main(["module", "export", str(path), "--to", "mlflow", "--tracking-uri", uri, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    Draft202012Validator(json.loads(schema_path("module-export").read_text(encoding="utf-8"))).validate(document)
    assert document == {
        "path": str(path),
        "registry": "mlflow",
        "tracking_uri": uri,
        "versions": [
            {"module_version": "1.0.0", "prompt": "dates-system-turns", "prompt_version": 1, "created": False},
            {"module_version": "1.0.1", "prompt": "dates-system-turns", "prompt_version": 2, "created": False},
        ],
    }


@settings(max_examples=30, deadline=None)
@given(day=st.one_of(st.text(max_size=20), st.integers()), month=st.text(max_size=20), style=st.text(max_size=20))
def test_mlflow_formats_the_messages_load_module_renders(
    exported: tuple[Path, str, list[RegisteredVersion]], day: Any, month: str, style: str
) -> None:
    path, uri, _ = exported
    module = load_module(path)
    prompt = _load(uri, "dates-system-turns", 2)
    assert prompt.format(day=day, month=month, style=style) == module.render(day=day, month=month, style=style)


def test_one_version_under_another_name_and_a_clash_refused(exported: tuple[Path, str, list[RegisteredVersion]], tmp_path: Path) -> None:
    path, uri, _ = exported
    (only,) = export_to_mlflow(path, "1.0.0", tracking_uri=uri, name="dates-first")
    assert (only.module_version, only.prompt, only.prompt_version, only.created) == ("1.0.0", "dates-first", 1, True)
    other = emit_sample(tmp_path, "user", "system")
    with pytest.raises(ModuleError, match="already holds a version 1.0.0 with other content"):
        export_to_mlflow(other, tracking_uri=uri, name="dates-first")


def test_an_unreachable_server_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    path = emit_sample(tmp_path, "system", "turns")
    assert main(["module", "export", str(path), "--to", "mlflow", "--tracking-uri", "http://127.0.0.1:9"]) == 1
    assert "grpo: error: MLflow at http://127.0.0.1:9 refused the export" in capsys.readouterr().err
