"""`grpo module package`: a wheel that installs into a fresh virtual environment without
grpo-dsl, needs only jinja2 there, and renders byte for byte what `load_module` renders."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.sample_modules import EVALUATION, PLACEMENTS, emit_sample

from grpo_dsl import load_module
from grpo_dsl.cli import main
from grpo_dsl.modules import ModuleError, package_module, record_evaluation
from grpo_dsl.modules.package import import_name

RENDERER = """
import importlib, json, sys
for line in sys.stdin:
    request = json.loads(line)
    module = importlib.import_module(request["module"])
    try:
        reply = {"messages": module.render(**request["fields"])}
    except module.RenderError as exc:
        reply = {"error": str(exc)}
    print(json.dumps(reply), flush=True)
"""



class Venv:
    """A fresh virtual environment (no system site packages) with the packaged wheels installed,
    and one long-lived Python process in it that renders on request."""

    def __init__(self, folder: Path, wheels: list[Path]):
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        self.python = folder / "bin" / "python"
        install = [str(self.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *map(str, wheels)]
        subprocess.run(install, check=True)
        self.process = subprocess.Popen(
            [str(self.python), "-c", RENDERER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=folder
        )

    def run(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, cwd=self.python.parent)

    def render(self, module: str, fields: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"module": module, "fields": fields}) + "\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self.process.stdout.readline())
        return reply

    def close(self) -> None:
        self.process.communicate(timeout=30)


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Distribution name -> module folder: lessons in the system or user turn, demos as
    turns or in the system turn, with and without demos, and a task without a system text."""
    folder = tmp_path_factory.mktemp("modules")
    found = {}
    for lessons, demos in PLACEMENTS:
        found[f"dates-{lessons}-{demos}"] = emit_sample(folder, lessons, demos, versions=2)
        found[f"dates-{lessons}-{demos}-nodemos"] = emit_sample(folder, lessons, demos, with_demos=False)
    found["dates-none-turns"] = emit_sample(folder, "none", "turns")
    found["dates-user-system-nosystem"] = emit_sample(folder, "user", "system", system=None)
    record_evaluation(found["dates-system-turns"], "1.0.1", "heldout", EVALUATION)
    return found


@pytest.fixture(scope="module")
def venv(modules: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    dist = tmp_path_factory.mktemp("dist")
    wheels = [package_module(path, name=name, out_dir=dist) for name, path in modules.items()]
    environment = Venv(tmp_path_factory.mktemp("venv") / "env", wheels)
    try:
        yield environment
    finally:
        environment.close()


@pytest.mark.slow
def test_the_fresh_environment_has_jinja2_and_the_modules_only(venv: Venv, modules: dict[str, Path]) -> None:
    probe = venv.run("import importlib.util; print(importlib.util.find_spec('grpo_dsl'))")
    assert probe.stdout.strip() == "None", probe
    listing = venv.run("import importlib.metadata as m; print(sorted(d.metadata['Name'].lower() for d in m.distributions()))")
    installed = set(json.loads(listing.stdout.replace("'", '"')))
    assert installed - {"pip", "setuptools"} == {"jinja2", "markupsafe", *modules}


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {"day": st.one_of(st.text(max_size=30), st.integers()), "month": st.text(max_size=30), "style": st.text(max_size=30)},
        optional={"unused": st.text(max_size=10)},
    )
)
def test_render_in_the_wheel_is_byte_identical_to_load_module(venv: Venv, modules: dict[str, Path], fields: dict[str, Any]) -> None:
    for name, path in modules.items():
        expected = load_module(path).render(**fields)
        assert venv.render(import_name(name), fields) == {"messages": expected}, name


@pytest.mark.slow
def test_the_wheel_describes_its_version(venv: Venv, modules: dict[str, Path]) -> None:
    module = load_module(modules["dates-system-turns"])
    probe = venv.run(
        "import json, dates_system_turns as m; "
        "print(json.dumps([m.__version__, m.name, m.fields, list(map(dict, m.experiences)), list(map(dict, m.demos)), "
        "dict(m.metadata), m.library['experiences'][0]['provenance']]))"
    )
    assert probe.returncode == 0, probe.stderr
    version, name, fields, experiences, demos, metadata, provenance = json.loads(probe.stdout)
    assert (version, name, fields) == ("1.0.1", "dates-system-turns", ["day", "month", "style"])
    assert experiences == list(module.library.prompt_entries())
    assert demos == list(module.library.demo_entries()) and len(demos) == 1
    assert metadata == json.loads(json.dumps(dict(module.manifest)))
    assert metadata["sha256"] == module.sha256 and metadata["model"]["name"] == "world-model"
    assert metadata["evaluation"]["heldout"]["metrics"]["mean"]["estimate"] == 0.9
    assert provenance == [p.to_json() for p in module.experiences[0].provenance]


@pytest.mark.slow
def test_a_missing_field_is_named(venv: Venv, modules: dict[str, Path]) -> None:
    reply = venv.render("dates_user_turns", {"day": 1})
    assert reply == {"error": "prompt module dates-user-turns@1.0.1 needs the fields `month`, `style` (it renders with day, month, style)"}


def test_package_takes_a_version_and_the_cli_prints_the_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = emit_sample(tmp_path, "system", "turns", versions=2)
    assert main(["module", "package", f"{path}@1.0.0", "--name", "Dates.Prompts", "--out", str(tmp_path / "dist")]) == 0
    wheel = Path(capsys.readouterr().out.strip())
    assert wheel.name == "dates_prompts-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read("dates_prompts-1.0.0.dist-info/METADATA").decode()
        prompt = json.loads(archive.read("dates_prompts/prompt.json"))
        chat = archive.read("dates_prompts/_chat.py").decode()
    assert names == {f"dates_prompts/{f}" for f in ("__init__.py", "_chat.py", "prompt.json", "module.json", "experiences.json")} | {
        f"dates_prompts-1.0.0.dist-info/{f}" for f in ("METADATA", "WHEEL", "RECORD")
    }
    assert [line for line in metadata.splitlines() if line.startswith("Requires-Dist")] == ["Requires-Dist: jinja2>=3.1"]
    assert len(prompt["demos"]) == 2 and prompt["experiences"][0]["text"].startswith("Write every date as YYYY-MM-DD, e.g.")
    assert chat == (Path(__file__).resolve().parents[2] / "grpo_dsl" / "prompts" / "chat.py").read_text()
    assert "import grpo_dsl" not in chat and "from grpo_dsl" not in chat


@pytest.mark.parametrize("name", ["-dates", "dates prompts", "class", "2dates"])
def test_a_name_python_cannot_install_or_import_is_refused(tmp_path: Path, name: str) -> None:
    path = emit_sample(tmp_path, "system", "turns")
    with pytest.raises(ModuleError, match="name"):
        package_module(path, name=name, out_dir=tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_a_tampered_module_is_not_packaged(tmp_path: Path) -> None:
    path = emit_sample(tmp_path, "system", "turns")
    experiences = path / "1.0.0" / "experiences.json"
    experiences.write_text(experiences.read_text().replace("YYYY-MM-DD", "DD/MM/YYYY"))
    with pytest.raises(ModuleError, match="changed after it was emitted"):
        package_module(path, name="dates", out_dir=tmp_path / "dist")
