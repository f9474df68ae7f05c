"""The code interpreter behind `tools = [python]`.

`run_python` runs a snippet in a separate Python process (`sys.executable -I -B`)
inside a fresh scratch directory, and returns what it printed. The child:

- has limits on address space (`memory_mb`), CPU time (the timeout, rounded up),
  file size (`MAX_FILE_BYTES`) and no core dumps (`RLIMIT_AS`, `RLIMIT_CPU`,
  `RLIMIT_FSIZE`, `RLIMIT_CORE`);
- sees a minimal environment (no API keys), with `HOME` and `TMPDIR` in the scratch
  directory;
- runs under an audit hook (installed before the snippet starts) that refuses
  sockets, starting processes or signalling them, loading native libraries or
  calling functions through `ctypes`, and writing, removing or renaming
  files outside the scratch directory;
- where Linux allows it, runs in a new network namespace (`unshare -n`), which has
  no network interface but loopback; `SandboxResult.network_namespace` says
  whether it did;
- is killed with its whole process group when the wall-clock `timeout_s` passes,
  and when it finishes (so nothing it started lives on).

The audit hook is defence in depth for code written by a model during training, not
a security boundary against a hostile author: run untrusted workloads in a
container or VM as well. Each stream is kept up to `max_output_bytes`; the rest is
dropped, `truncated` is set and a last line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_FILE_BYTES", "MAX_OUTPUT_BYTES", "PYTHON_TOOL", "SandboxResult", "run_python"]

MAX_OUTPUT_BYTES = 16_000
MAX_FILE_BYTES = 16 * 1024 * 1024
_DRAIN_TIMEOUT_S = 5.0

PYTHON_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": (
            "Run a Python 3 program in a fresh sandbox and get back what it prints (stdout and "
            "stderr). Use print() to see results. No network access; time and memory are limited; "
            "files can be written in the current directory only and do not persist between calls."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The complete Python program to run."}},
            "required": ["code"],
            "additionalProperties": False,
        },
    },
}


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What a snippet printed and how it ended.

    `exit_code` is negative when a signal ended the process (e.g. -9 when killed);
    `timed_out` when the wall-clock limit killed it; `truncated` when output was dropped.
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    truncated: bool
    network_namespace: bool = False


_BOOTSTRAP = r"""
import json, linecache, os, resource, sys, traceback

limits = json.loads(sys.argv[1])
code = sys.stdin.read()
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
for name, value in (("RLIMIT_AS", limits["memory"]), ("RLIMIT_CPU", limits["cpu"]),
                    ("RLIMIT_FSIZE", limits["fsize"]), ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, name), (value, value))

scratch = os.path.realpath(os.getcwd())
allowed = (scratch, os.path.realpath(os.devnull))
forbidden = ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
             "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
             "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "ctypes.cdata", "ctypes.call_function")
path_events = {"os.remove": 1, "os.rename": 2, "os.mkdir": 1, "os.rmdir": 1, "os.chmod": 1, "os.chown": 1,
               "os.symlink": 2, "os.link": 2, "os.truncate": 1, "os.utime": 1, "shutil.rmtree": 1}
write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def outside(path):
    if isinstance(path, int):
        return False
    real = os.path.realpath(os.path.join(scratch, os.fsdecode(path)))
    return not any(real == root or real.startswith(root + os.sep) for root in allowed)

def guard(event, args):
    if event in forbidden:
        raise PermissionError(f"the sandbox does not allow {event}")
    if event == "ctypes.dlopen" and args[0] is not None:
        raise PermissionError("the sandbox does not allow loading native libraries with ctypes")
    if event == "open":
        path, mode, flags = args
        writing = any(c in (mode or "") for c in "wax+") or (flags or 0) & write_flags
        if writing and outside(path):
            raise PermissionError(f"the sandbox only writes inside the current directory, not {path}")
    elif event in path_events:
        for path in args[: path_events[event]]:
            if path is not None and outside(path):
                raise PermissionError(f"the sandbox only changes files inside the current directory, not {path}")

linecache.cache["<sandbox>"] = (len(code), None, code.splitlines(True), "<sandbox>")
compiled = compile(code, "<sandbox>", "exec")
sys.argv = ["<sandbox>"]
sys.addaudithook(guard)
del json, resource
try:
    exec(compiled, {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException as exc:
    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
    sys.exit(1)
"""


@functools.cache
def _network_namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the child an empty network namespace, if the OS allows."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    for prefix in ((unshare, "-n"), (unshare, "-rn")):
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return prefix
    return ()


def _environment(scratch: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    async def read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(1 << 16):
            room = self.limit - len(self.data)
            self.data += chunk[:room]
            self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes]"
        return text


async def run_python(
    code: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 512,
    scratch_dir: Path | None = None,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> SandboxResult:
    """Run a Python snippet in the sandbox and return its output.

    `scratch_dir` is the working directory (created if missing, left in place);
    without it a temporary directory is made and removed afterwards.

    >>> asyncio.run(run_python("print(6 * 7)")).stdout
    '42\\n'
    """
    owned = scratch_dir is None
    scratch = Path(tempfile.mkdtemp(prefix="grpo-sandbox-")) if scratch_dir is None else Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    limits = {"memory": memory_mb * 1024 * 1024, "cpu": math.ceil(timeout_s) + 1, "fsize": MAX_FILE_BYTES}
    prefix = _network_namespace_prefix()
    try:
        process = await asyncio.create_subprocess_exec(
            *prefix, sys.executable, "-I", "-B", "-c", _BOOTSTRAP, json.dumps(limits),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=scratch,
            env=_environment(scratch),
            start_new_session=True,
        )
        try:
            return await _supervise(process, code, timeout_s, max_output_bytes, bool(prefix))
        finally:
            _kill_group(process)
            await process.wait()
    finally:
        if owned:
            shutil.rmtree(scratch, ignore_errors=True)


async def _supervise(
    process: asyncio.subprocess.Process, code: str, timeout_s: float, limit: int, namespace: bool
) -> SandboxResult:
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stdout, stderr = _Capture(limit), _Capture(limit)
    readers = asyncio.gather(stdout.read(process.stdout), stderr.read(process.stderr))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(code.encode("utf-8", errors="replace"))
        await process.stdin.drain()
    process.stdin.close()
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
    _kill_group(process)
    exit_code = await process.wait()
    try:
        await asyncio.wait_for(readers, _DRAIN_TIMEOUT_S)
    except TimeoutError:
        readers.cancel()
    stderr_text = stderr.text()
    if timed_out:
        stderr_text += f"\n[killed: the program ran longer than {timeout_s:g} s]"
    return SandboxResult(
        stdout=stdout.text(),
        stderr=stderr_text.lstrip("\n"),
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=bool(stdout.dropped or stderr.dropped),
        network_namespace=namespace,
    )


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
