"""Register the versions of a prompt module in an MLflow Prompt Registry.

Each version becomes a version of the MLflow prompt of the same name (or `name`), in
version order: its template is the chat messages of `prompts.portable`, self-contained
Jinja that MLflow's `PromptVersion.format(**fields)` renders into the messages
`load_module(...).render(**fields)` returns; its tags carry the module's version,
parent, content sha256, model, placement, the experiences (JSON) and their count,
the demos, and the evaluation results. A version already registered (the same
`grpo.version` and `grpo.sha256`) is not registered again. `mlflow` is imported only
here, from the `mlflow` extra.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from grpo_dsl.modules.loader import ModuleError, PromptModule, read_index, read_version
from grpo_dsl.modules.versioning import VersionError, select_version
from grpo_dsl.prompts.portable import portable_messages

__all__ = ["RegisteredVersion", "export_to_mlflow", "mlflow_tags", "mlflow_template"]


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    """A module version and the MLflow prompt version that holds it; `created` is False
    when it was registered before."""

    module_version: str
    prompt: str
    prompt_version: int
    created: bool


def mlflow_template(module: PromptModule) -> list[dict[str, str]]:
    """The chat template registered for `module`: self-contained Jinja messages."""
    return portable_messages(module.templates, module.library.prompt_entries(), module.library.demo_entries())


def mlflow_tags(module: PromptModule) -> dict[str, str]:
    """The tags of `module`'s prompt version (MLflow tag values are strings)."""
    manifest = module.manifest
    tags = {
        "grpo.module": module.name,
        "grpo.version": module.version,
        "grpo.sha256": module.sha256,
        "grpo.model": module.model,
        "grpo.placement": str(manifest["placement"]),
        "grpo.created": str(manifest["created"]),
        "grpo.experiences.count": str(len(module.experiences)),
        "grpo.experiences": json.dumps(list(module.library.prompt_entries()), ensure_ascii=False),
        "grpo.demos.count": str(len(module.demos)),
    }
    if module.parent is not None:
        tags["grpo.parent"] = module.parent
    if manifest["learner"] is not None:
        tags["grpo.learner"] = str(manifest["learner"]["name"])
    if module.demos:
        tags["grpo.demos"] = json.dumps(list(module.library.demo_entries()), ensure_ascii=False)
    if module.evaluation:
        tags["grpo.evaluation"] = json.dumps(dict(module.evaluation), ensure_ascii=False, sort_keys=True)
    return tags


def _commit_message(module: PromptModule) -> str:
    change = module.manifest["change"]
    if change["bump"] == "initial":
        return f"{module.name} {module.version}: the first version"
    parts = [f"{module.name} {module.version}: a {change['bump']} change from {module.parent}"]
    parts += [f"{what} {', '.join(change[what])}" for what in ("added", "modified", "removed") if change[what]]
    return "; ".join(parts)


def _model_config(module: PromptModule) -> dict[str, Any]:
    config: dict[str, Any] = {"model_name": module.model}
    if module.manifest["temperature"] is not None:
        config["temperature"] = module.manifest["temperature"]
    return config


def _registered(client: Any, prompt: str) -> dict[str, tuple[str, int]]:
    """Module version -> (content sha256, MLflow version) of the versions `prompt` already holds."""
    from mlflow.exceptions import MlflowException

    found: dict[str, tuple[str, int]] = {}
    token = None
    while True:
        try:
            page = client.search_prompt_versions(prompt, page_token=token)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return found
            raise
        for entry in page:
            tags = entry.tags or {}
            if "grpo.version" in tags:
                found[tags["grpo.version"]] = (tags.get("grpo.sha256", ""), int(entry.version))
        token = page.token
        if not token:
            return found


def _chosen_versions(root: Path, version: str | None) -> list[PromptModule]:
    index = read_index(root)
    if version is None:
        numbers = [entry.version for entry in index.versions]
    else:
        try:
            numbers = [select_version([entry.version for entry in index.versions], version)]
        except VersionError as exc:
            raise ModuleError(f"{root}: {exc}") from None
    return [read_version(root, index, number) for number in numbers]


def export_to_mlflow(
    path: str | PathLike[str], version: str | None = None, *, tracking_uri: str, name: str | None = None
) -> list[RegisteredVersion]:
    """Register every version of the module at `path` (or the one `version` selects) in
    the MLflow Prompt Registry at `tracking_uri`, as the prompt `name` (default: the
    module's name). Versions registered before are reported, not registered again.
    Raises `ModuleError`.
    """
    modules = _chosen_versions(Path(path), version)
    if not modules:
        raise ModuleError(f"{path}: the module has no version to export")
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ModuleError("exporting to MLflow needs the `mlflow` extra: pip install 'grpo-dsl[mlflow]'") from None
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    prompt = name or modules[0].name
    results: list[RegisteredVersion] = []
    try:
        registered_before = _registered(client, prompt)
        for module in modules:
            before = registered_before.get(module.version)
            if before is not None:
                if before[0] != module.sha256:
                    raise ModuleError(
                        f"the MLflow prompt {prompt!r} already holds a version {module.version} with other content "
                        f"(sha256 {before[0][:12]}, not {module.sha256[:12]}): export under another --name"
                    )
                results.append(RegisteredVersion(module.version, prompt, before[1], created=False))
                continue
            registered = client.register_prompt(
                name=prompt,
                template=mlflow_template(module),
                commit_message=_commit_message(module),
                tags=mlflow_tags(module),
                model_config=_model_config(module),
            )
            results.append(RegisteredVersion(module.version, prompt, int(registered.version), created=True))
    except MlflowException as exc:
        raise ModuleError(f"MLflow at {tracking_uri} refused the export: {exc.message}") from None
    return results
