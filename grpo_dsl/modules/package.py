"""Package one version of a prompt module as a wheel that needs only jinja2.

```
NAME-VERSION-py3-none-any.whl
  PACKAGE/__init__.py       render(**fields), experiences, demos, metadata, library
  PACKAGE/_chat.py          grpo_dsl/prompts/chat.py, copied: the message renderer
  PACKAGE/prompt.json       the composed templates, the lessons and demos in prompt order
  PACKAGE/module.json       the version's manifest, as emitted
  PACKAGE/experiences.json  the library with its provenance, as emitted
```

`_chat.py` is the very file grpo-dsl renders messages with, and `__init__.py` renders
in a sandboxed, strict jinja2 environment with the options of `core.templating.sandbox`
(without its render budget, which only ever stops a render), so the installed module's
`render` returns the messages `load_module(...).render(...)` returns, byte for byte. The wheel is built from a generated project by the `build` frontend with
the hatchling backend, both from the `package` extra.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

from grpo_dsl.core.files import atomic_write_text
from grpo_dsl.core.resources import resource_path
from grpo_dsl.modules.loader import EXPERIENCES_FILE, MANIFEST_FILE, ModuleError, PromptModule, load_module

__all__ = ["import_name", "package_module"]

_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_RENDERER = "prompts/chat.py"
"""The file of grpo-dsl the wheel carries as `_chat.py`."""


def import_name(name: str) -> str:
    """The Python package a distribution `name` installs: lower case, with `-` and `.` as `_`."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _check_name(name: str) -> str:
    if not _PROJECT_NAME.match(name):
        raise ModuleError(
            f"{name!r} is not a valid package name: use letters, digits, `-`, `_` and `.`, "
            "starting and ending with a letter or digit"
        )
    package = import_name(name)
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ModuleError(f"the package name {name!r} gives the import name {package!r}, which Python cannot import")
    return package


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's."""
    return json.dumps(value, ensure_ascii=False)


def _pyproject(name: str, package: str, module: PromptModule) -> str:
    description = f"Prompt module {module.name} {module.version}, learned with Training-Free GRPO for {module.model}"
    return "\n".join(
        [
            "[build-system]",
            'requires = ["hatchling>=1.21"]',
            'build-backend = "hatchling.build"',
            "",
            "[project]",
            f"name = {_toml_string(name)}",
            f"version = {_toml_string(module.version)}",
            f"description = {_toml_string(description)}",
            'readme = "README.md"',
            'requires-python = ">=3.9"',
            'dependencies = ["jinja2>=3.1"]',
            "",
            "[tool.hatch.build.targets.wheel]",
            f"packages = [{_toml_string(package)}]",
            "",
        ]
    )


def _readme(name: str, package: str, module: PromptModule) -> str:
    call = ", ".join(f"{f}=..." for f in module.fields)
    return (
        f"# {name} {module.version}\n\n"
        f"The prompt module `{module.name}` {module.version}, learned with Training-Free GRPO for the model "
        f"`{module.model}`: {len(module.experiences)} experiences and {len(module.demos)} demos.\n\n"
        f"```python\nimport {package}\n\nmessages = {package}.render({call})\n```\n\n"
        f"`render` returns OpenAI chat messages. `{package}.experiences`, `{package}.demos` and "
        f"`{package}.metadata` (content sha256 `{module.sha256}`, the model, evaluation results) "
        "describe the version.\n"
    )


def _prompt(module: PromptModule) -> dict[str, Any]:
    templates = module.templates
    return {
        "templates": {"system": templates.system, "user": templates.user, "demos": templates.demos},
        "experiences": list(module.library.prompt_entries()),
        "demos": list(module.library.demo_entries()),
    }


def _write_project(project: Path, name: str, package: str, module: PromptModule) -> None:
    folder = module.path / module.version
    files = {
        "pyproject.toml": _pyproject(name, package, module),
        "README.md": _readme(name, package, module),
        f"{package}/__init__.py": resource_path("modules/package_init.py.txt").read_text(encoding="utf-8"),
        f"{package}/prompt.json": json.dumps(_prompt(module), indent=2, ensure_ascii=False) + "\n",
        f"{package}/{MANIFEST_FILE}": json.dumps(dict(module.manifest), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        f"{package}/{EXPERIENCES_FILE}": (folder / EXPERIENCES_FILE).read_text(encoding="utf-8"),
        f"{package}/_chat.py": resource_path(_RENDERER).read_text(encoding="utf-8"),
    }
    for relative, text in files.items():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)


def _build_wheel(project: Path, out_dir: Path) -> Path:
    try:
        import build
        import pyproject_hooks
    except ImportError:
        raise ModuleError("packaging a module needs the `package` extra: pip install 'grpo-dsl[package]'") from None
    builder = build.ProjectBuilder(project, python_executable=sys.executable, runner=pyproject_hooks.quiet_subprocess_runner)
    missing = builder.check_dependencies("wheel")
    if missing:
        needed = ", ".join(sorted(" ".join(chain) for chain in missing))
        raise ModuleError(f"packaging a module needs {needed}: pip install 'grpo-dsl[package]'")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return Path(builder.build("wheel", out_dir))
    except build.BuildBackendException as exc:
        raise ModuleError(f"the wheel could not be built: {exc}") from None


def package_module(
    path: str | PathLike[str], version: str | None = None, *, name: str, out_dir: str | PathLike[str] = "dist"
) -> Path:
    """Build a wheel of version `version` (a number or a range; None: the latest) of the
    module at `path`, as the distribution `name`, into `out_dir`; return the wheel's path.

    The module is loaded (every hash checked) before it is packaged. Raises `ModuleError`.
    """
    package = _check_name(name)
    module = load_module(path, version)
    with tempfile.TemporaryDirectory(prefix="grpo-package-") as scratch:
        project = Path(scratch) / "project"
        _write_project(project, name, package, module)
        return _build_wheel(project, Path(out_dir))
