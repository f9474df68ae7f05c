"""The code interpreter sandbox behind `tools = [python]`."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from grpo_dsl.rollout.sandbox import PYTHON_TOOL, SandboxResult, run_python


def sandbox(code: str, **kwargs: Any) -> SandboxResult:
    return asyncio.run(run_python(code, **kwargs))


def test_stdout_and_stderr_are_captured() -> None:
    result = sandbox("import sys\nprint(6 * 7)\nprint('careful', file=sys.stderr)")
    assert (result.stdout, result.stderr, result.exit_code) == ("42\n", "careful\n", 0)
    assert not result.timed_out and not result.truncated


def test_exception_gives_a_traceback_of_the_snippet() -> None:
    result = sandbox("x = 1\ny = x / 0")
    assert result.exit_code == 1
    assert 'File "<sandbox>", line 2' in result.stderr
    assert "y = x / 0" in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_timeout_kills_the_process() -> None:
    result = sandbox("while True:\n    pass", timeout_s=1)
    assert result.timed_out
    assert result.exit_code == -9
    assert "ran longer than 1 s" in result.stderr


def test_timeout_kills_what_the_snippet_waits_on() -> None:
    result = sandbox("import time\nprint('started', flush=True)\ntime.sleep(600)", timeout_s=1)
    assert result.timed_out and result.stdout == "started\n"


def test_memory_limit() -> None:
    result = sandbox("block = bytearray(1024 * 1024 * 1024)\nprint('allocated')", memory_mb=256)
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


def test_socket_connect_is_blocked() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
        result = sandbox(code)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert result.exit_code == 1
    assert "connected" not in result.stdout
    assert "PermissionError: the sandbox does not allow socket" in result.stderr


def test_starting_processes_is_blocked() -> None:
    result = sandbox("import subprocess\nsubprocess.run(['echo', 'escaped'])")
    assert "escaped" not in result.stdout
    assert "the sandbox does not allow subprocess.Popen" in result.stderr


def test_files_stay_in_the_scratch_dir(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    outside = tmp_path / "outside.txt"
    code = (
        "open('notes.txt', 'w').write('kept')\n"
        "import os\nprint(os.getcwd())\n"
        f"open({str(outside)!r}, 'w').write('escaped')"
    )
    result = sandbox(code, scratch_dir=scratch)
    assert (scratch / "notes.txt").read_text() == "kept"
    assert Path(result.stdout.strip()).resolve() == scratch.resolve()
    assert not outside.exists()
    assert "only writes inside the current directory" in result.stderr


def test_removing_files_outside_is_blocked(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    result = sandbox(f"import os\nos.remove({str(precious)!r})", scratch_dir=tmp_path / "scratch")
    assert precious.read_text() == "keep me"
    assert "PermissionError" in result.stderr


def test_temporary_scratch_dir_is_removed() -> None:
    result = sandbox("import os\nprint(os.getcwd())")
    assert result.exit_code == 0
    assert not Path(result.stdout.strip()).exists()


def test_environment_has_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPO_TEST_API_KEY", "sk-secret")
    result = sandbox("import os\nprint(os.environ.get('GRPO_TEST_API_KEY'))")
    assert result.stdout == "None\n"


def test_output_is_truncated() -> None:
    result = sandbox("print('x' * 50_000)", max_output_bytes=1000)
    assert result.truncated
    assert result.stdout.startswith("x" * 1000)
    assert result.stdout.endswith("[output truncated: 49001 more bytes]")


def test_stdin_is_empty() -> None:
    result = sandbox("import sys\nprint(repr(sys.stdin.read()))")
    assert result.stdout == "''\n"


def test_tool_definition() -> None:
    function = PYTHON_TOOL["function"]
    assert PYTHON_TOOL["type"] == "function"
    assert function["name"] == "python"
    assert function["parameters"]["required"] == ["code"]
    assert function["parameters"]["properties"]["code"]["type"] == "string"
