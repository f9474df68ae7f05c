"""The code interpreter sandbox behind `tools = [python]`: run_python in both isolations.

The hostile snippets, run through real tool-use rollouts, are in test_hostile.py.
"""

from __future__ import annotations

import ast
import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from support.hostile import processes_with, snippet

from grpo_dsl.language.attributes import lookup
from grpo_dsl.rollout.sandbox import (
    ISOLATIONS,
    PYTHON_TOOL,
    SCRATCH,
    Limits,
    SandboxResult,
    SandboxUnavailable,
    run_python,
)

pytestmark = pytest.mark.usefixtures("bubblewrap")

BOTH = pytest.mark.parametrize("isolation", ISOLATIONS)


def sandbox(code: str, **kwargs: Any) -> SandboxResult:
    return asyncio.run(run_python(code, **kwargs))


@BOTH
def test_stdout_and_stderr_are_captured(isolation: str) -> None:
    result = sandbox("import sys\nprint(6 * 7)\nprint('careful', file=sys.stderr)", isolation=isolation)
    assert (result.stdout, result.stderr, result.exit_code) == ("42\n", "careful\n", 0)
    assert not result.timed_out and not result.truncated
    assert result.isolation == isolation


@BOTH
def test_exception_gives_a_traceback_of_the_snippet(isolation: str) -> None:
    result = sandbox("x = 1\ny = x / 0", isolation=isolation)
    assert result.exit_code == 1
    assert 'File "<sandbox>", line 2' in result.stderr
    assert "y = x / 0" in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


@BOTH
def test_a_syntax_error_shows_the_line(isolation: str) -> None:
    result = sandbox("total = 0\nfor i in range(3)\n    total += i", isolation=isolation)
    assert result.exit_code == 1
    assert result.stderr.startswith('  File "<sandbox>", line 2\n    for i in range(3)\n')
    assert "SyntaxError: expected ':'" in result.stderr


MATHS = {
    "arithmetic": ("print(sum(i * i for i in range(1, 11)), 2 ** 64, 7 // 2, round(2 / 3, 4))", "385 18446744073709551616 3 0.6667\n"),
    "loops": ("total = 0\nfor a in range(1, 50):\n    for b in range(a, 50):\n        if (a * a + b * b) ** 0.5 == 25:\n            total += 1\nprint(total)", "2\n"),
    "math": ("import math\nprint(math.comb(10, 3), math.gcd(84, 36), math.isqrt(99), math.factorial(6), f'{math.pi:.5f}')", "120 12 9 720 3.14159\n"),
    "fractions": ("from fractions import Fraction\nx = Fraction(1, 3) + Fraction(1, 6)\nprint(x, x.limit_denominator(10), float(x))", "1/2 1/2 0.5\n"),
    "itertools": ("import itertools\nprint(sum(1 for p in itertools.permutations(range(4)) if p[0] < p[-1]), list(itertools.accumulate([1, 2, 3])))", "12 [1, 3, 6]\n"),
    "standard library": ("import statistics, decimal, collections, functools, re, json\nprint(statistics.median([3, 1, 2]), decimal.Decimal('0.1') * 3, json.dumps(collections.Counter('aab')))", '2 0.3 {"a": 2, "b": 1}\n'),
}


@BOTH
@pytest.mark.parametrize("setting", list(MATHS))
def test_the_maths_snippets_of_the_paper_run(isolation: str, setting: str) -> None:
    code, printed = MATHS[setting]
    result = sandbox(code, isolation=isolation)
    assert (result.stdout, result.stderr, result.exit_code) == (printed, "", 0)


@BOTH
def test_timeout_kills_the_process(isolation: str) -> None:
    result = sandbox("while True:\n    pass", isolation=isolation, limits=Limits(timeout_s=1))
    assert result.timed_out
    assert result.exit_code == -9
    assert "ran longer than 1 s" in result.stderr


@BOTH
def test_timeout_kills_what_the_snippet_waits_on(isolation: str) -> None:
    result = sandbox("import time\nprint('started', flush=True)\ntime.sleep(600)", isolation=isolation, limits=Limits(timeout_s=1))
    assert result.timed_out and result.stdout == "started\n"


@BOTH
def test_memory_limit(isolation: str) -> None:
    result = sandbox("block = bytearray(1024 * 1024 * 1024)\nprint('allocated')", isolation=isolation, limits=Limits(memory_mb=256))
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


@BOTH
def test_the_audit_hook_refuses_sockets_with_a_clear_message(isolation: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
        result = sandbox(code, isolation=isolation)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert result.exit_code == 1
    assert "connected" not in result.stdout
    assert "PermissionError: the sandbox does not allow socket" in result.stderr


@BOTH
def test_the_audit_hook_refuses_processes_with_a_clear_message(isolation: str) -> None:
    result = sandbox("import subprocess\nsubprocess.run(['echo', 'escaped'])", isolation=isolation)
    assert "escaped" not in result.stdout
    assert "the sandbox does not allow subprocess.Popen" in result.stderr


@BOTH
def test_files_are_written_in_a_scratch_folder_that_does_not_last(isolation: str) -> None:
    code = "import os\nopen('notes.txt', 'w').write('kept')\nprint(os.getcwd())\nprint(open('notes.txt').read())"
    first = sandbox(code, isolation=isolation)
    scratch, content = first.stdout.splitlines()
    assert content == "kept"
    assert (scratch == SCRATCH) if isolation == "bubblewrap" else not Path(scratch).exists()
    second = sandbox("import os\nprint(os.listdir('.'))", isolation=isolation)
    assert second.stdout == "[]\n"


@BOTH
def test_writing_outside_the_scratch_folder_is_refused(isolation: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    result = sandbox(f"import os\nopen({str(outside)!r}, 'w').write('escaped')\nos.remove({str(precious)!r})", isolation=isolation)
    assert not outside.exists()
    assert precious.read_text() == "keep me"
    assert "only writes inside the current directory" in result.stderr


@BOTH
def test_mounted_files_are_read_only_copies_under_their_names(isolation: str, tmp_path: Path) -> None:
    table = tmp_path / "data" / "rates.csv"
    table.parent.mkdir()
    table.write_text("year,rate\n2024,0.05\n")
    table.chmod(0o600)  # readable by its owner only: the sandbox still gets it
    code = (
        "import os\nprint(sorted(os.listdir('.')))\nprint(open('rates.csv').read(), end='')\n"
        "try:\n    open('rates.csv', 'a').write('2025,0.9\\n')\nexcept OSError as error:\n    print(type(error).__name__)"
    )
    result = sandbox(code, files=[table], isolation=isolation)
    assert result.stdout.splitlines()[:3] == ["['rates.csv']", "year,rate", "2024,0.05"]
    assert result.stdout.splitlines()[3] in ("PermissionError", "OSError")
    assert table.read_text() == "year,rate\n2024,0.05\n"


def test_two_mounted_files_may_not_share_a_name(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rates.csv").write_text("x\n")
    with pytest.raises(ValueError, match="share a name"):
        sandbox("pass", files=[tmp_path / "a" / "rates.csv", tmp_path / "b" / "rates.csv"])


@BOTH
def test_the_environment_has_no_secret(isolation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPO_TEST_API_KEY", "sk-secret")
    result = sandbox("import os\nprint(os.environ.get('GRPO_TEST_API_KEY'))", isolation=isolation)
    assert result.stdout == "None\n"


def test_the_sandbox_runs_as_another_user_in_its_own_namespaces() -> None:
    code = (
        "import os\nprint(os.getuid() != 0, os.getpid(), sorted(os.listdir('/')))\n"
        "print(repr(open('/proc/1/environ').read()) if os.access('/proc/1/environ', os.R_OK) else 'unreadable')\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))"
    )
    result = sandbox(code)
    first, environ, pids = result.stdout.splitlines()
    assert first.startswith("True ")
    assert set(ast.literal_eval(first.split(" ", 2)[2])) <= {"sandbox", "usr", "lib", "lib64", "bin", "etc", "dev", "proc", "root", "tmp"}
    assert environ in ("''", "unreadable")  # PID 1 is the sandbox's own, started with an empty environment
    assert len(ast.literal_eval(pids)) <= 3  # bwrap's init, the interpreter and nothing of the host


def test_a_process_limit_binds_the_sandbox() -> None:
    result = sandbox(snippet("fork_past_limit", {}), limits=Limits(processes=12))
    refused, verdict = result.stdout.splitlines()
    assert refused == "refused: BlockingIOError"
    assert int(verdict.removeprefix("verdict: ")) < 12


@pytest.mark.parametrize("name", ["detached_grandchild_exits", "detached_grandchild"])
def test_a_detached_grandchild_dies_with_the_sandbox(name: str) -> None:
    marker = f"grpo-detached-{os.getpid()}-{name}"
    result = sandbox(snippet(name, {"MARKER": marker}), limits=Limits(timeout_s=2))
    assert result.stdout == "verdict: detached\n"
    assert result.timed_out == (name == "detached_grandchild")
    assert processes_with(marker) == []


def test_output_is_truncated() -> None:
    result = sandbox("print('x' * 50_000)", limits=Limits(output_bytes=1000))
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


def test_the_language_offers_exactly_the_isolations() -> None:
    spec = lookup("model", "sandbox")
    assert spec is not None and spec.words == ISOLATIONS and spec.default == "bubblewrap"


@pytest.mark.usefixtures("no_bubblewrap")
def test_without_bubblewrap_the_tool_refuses_and_says_what_to_do() -> None:
    with pytest.raises(SandboxUnavailable) as refused:
        sandbox("print('ran')")
    message = str(refused.value)
    assert "`bwrap` is not installed" in message
    assert "apt-get install bubblewrap" in message
    assert 'sandbox = "unsafe-process"' in message
    assert sandbox("print('ran')", isolation="unsafe-process").stdout == "ran\n"
