"""The code interpreter behind `tools = [python]`: model-written code, run in isolation.

`run_python(code, files=..., limits=..., isolation=...)` runs a snippet with the
interpreter's standard library and returns what it printed (`SandboxResult`). The
snippet's working folder is a fresh, empty scratch folder; the `files` are copied
into it read-only under their own names. Nothing else of the machine is visible.

Two isolations (docs/sandbox.md):

- `"bubblewrap"` (the default) starts the snippet with `bwrap`, outside Python:
  new PID, network, IPC, UTS and mount namespaces (and a user namespace when not
  root); a root folder that holds only a read-only bind of the interpreter and its
  shared libraries, a private `/proc`, a minimal `/dev` and a size-limited tmpfs
  scratch folder; an empty environment (also for `bwrap` itself, so the sandbox's
  PID 1 carries no variable); a non-root uid (as root, a fresh uid per call, so
  the process limit counts this sandbox alone). When `bwrap` ends, on time-out or
  when the snippet exits, the PID namespace ends with it, and every process the
  snippet started is killed.
- `"unsafe-process"` runs the snippet in a plain child process, with the same
  limits, an empty network namespace where Linux allows one, and an audit hook that
  refuses sockets, processes and writes outside the scratch folder. The hook is a
  Python function inside the child: hostile code can switch it off and then read
  anything the user can. Use it only where bubblewrap cannot run.

Both set limits on address space, CPU time, file size, processes and open files
(`Limits`), kill the snippet after `timeout_s` of wall-clock time, and keep each
output stream up to `output_bytes` (the rest is dropped, `truncated` is set and a
last line says so). The audit hook is installed under bubblewrap too, where it only
makes ordinary refusals readable; the namespaces are the boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from grpo_dsl.core.errors import GrpoError

__all__ = [
    "ISOLATIONS",
    "Isolation",
    "Limits",
    "PYTHON_TOOL",
    "SCRATCH",
    "SandboxResult",
    "SandboxUnavailable",
    "bubblewrap_problem",
    "require_isolation",
    "run_python",
]

Isolation = Literal["bubblewrap", "unsafe-process"]
ISOLATIONS: tuple[Isolation, ...] = get_args(Isolation)

SCRATCH = "/sandbox"
"""The snippet's working folder under bubblewrap."""

_DRAIN_TIMEOUT_S = 5.0
_UID_RANGE = (1 << 30, (1 << 31) - 2)
"""As root, each call runs as a uid drawn from here: no account uses one, so the
process limit (which the kernel counts per uid, and never applies to root) counts
this sandbox's processes alone."""

PYTHON_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": (
            "Run a Python 3 program in a fresh sandbox and get back what it prints (stdout and "
            "stderr). Use print() to see results. Only the standard library is available. No network "
            "access; time and memory are limited; files can be written in the current directory only "
            "and do not persist between calls."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The complete Python program to run."}},
            "required": ["code"],
            "additionalProperties": False,
        },
    },
}


class SandboxUnavailable(GrpoError):
    """The isolation a tool asks for cannot run on this machine."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one snippet may use. `processes` counts every process and thread of the
    snippet (the interpreter included); `scratch_bytes` bounds the scratch folder."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    processes: int = 32
    open_files: int = 256
    file_bytes: int = 16 * 1024 * 1024
    scratch_bytes: int = 64 * 1024 * 1024
    output_bytes: int = 16_000


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
    isolation: Isolation


_BOOTSTRAP = r"""
import json, os, resource, sys

settings = json.loads(sys.argv[1])
code = sys.stdin.read()
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
for name, value in settings["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if settings["uid"] is not None and os.getuid() == 0:
    os.setgroups([])
    os.setgid(settings["uid"])
    os.setuid(settings["uid"])

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

sys.argv = ["<sandbox>"]
sys.addaudithook(guard)
del json, resource, settings
try:
    exec(compile(code, "<sandbox>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException as exc:
    import linecache, traceback  # only now: they take longer to import than most snippets run
    linecache.cache["<sandbox>"] = (len(code), None, code.splitlines(True), "<sandbox>")
    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
    sys.exit(1)
"""


def _settings(limits: Limits, *, isolated: bool, uid: int | None = None) -> str:
    """The bootstrap's settings: its resource limits and the uid to drop to (as root).

    The process limit is set only when isolated: the kernel counts it per user, so in
    a plain child process it would count every process of the user running grpo."""
    rlimits = {
        "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
        "RLIMIT_CPU": math.ceil(limits.timeout_s) + 1,
        "RLIMIT_FSIZE": limits.file_bytes,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_CORE": 0,
    }
    if isolated:
        rlimits["RLIMIT_NPROC"] = limits.processes
    return json.dumps({"rlimits": rlimits, "uid": uid})


_ENVIRONMENT = {"LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "PATH": "/usr/bin:/bin"}


# ------------------------------------------------------------------ bubblewrap


def _interpreter() -> Path:
    return Path(os.path.realpath(sys.executable))


_SYSTEM_LIBRARIES = ("/usr/lib", "/usr/lib64", "/lib", "/lib64")


def _standard_library() -> set[str]:
    """The folders of the interpreter's own standard library (not a virtualenv's)."""
    base = {"base": sys.base_prefix, "installed_base": sys.base_prefix}
    base |= {"platbase": sys.base_exec_prefix, "installed_platbase": sys.base_exec_prefix}
    folders = {os.path.realpath(sysconfig.get_path(name, vars=base)) for name in ("stdlib", "platstdlib")}
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and sysconfig.get_config_var("LIBDIR"):
        folders.add(os.path.realpath(str(sysconfig.get_config_var("LIBDIR"))))
    return folders


def _mounts() -> Iterator[tuple[str, ...]]:
    """Read-only binds of the interpreter, its standard library (with `site-packages`
    hidden) and the shared libraries it loads; merged-/usr symlinks stay symlinks.
    The folders above a bind are made world-readable (bwrap would copy the host's
    modes, e.g. 0700 for /root, which the unprivileged uid could not cross)."""
    binds: list[str] = [str(_interpreter())]
    for folder in _SYSTEM_LIBRARIES:
        if os.path.islink(folder):
            yield ("--symlink", os.readlink(folder), folder)
        elif os.path.isdir(folder):
            binds.append(folder)
    binds += [f for f in sorted(_standard_library()) if not f.startswith(tuple(lib + os.sep for lib in _SYSTEM_LIBRARIES))]
    if os.path.isfile("/etc/ld.so.cache"):
        binds.append("/etc/ld.so.cache")
    made: set[str] = set()
    bound: list[str] = []
    for bind in binds:
        if not any(bind.startswith(folder + os.sep) for folder in bound):  # else it is inside a bind already
            for parent in reversed(Path(bind).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    yield ("--perms", "0755", "--dir", str(parent))
            bound.append(bind)
            yield ("--ro-bind", bind, bind)
        packages = os.path.join(bind, "site-packages")
        if bind not in _SYSTEM_LIBRARIES and os.path.isdir(packages):
            yield ("--tmpfs", packages)


def _bubblewrap_command(bwrap: str, names: Sequence[str], fds: Sequence[int], limits: Limits, root: bool) -> list[str]:
    """The `bwrap` command line; `fds` are open files copied to `SCRATCH/<name>`."""
    if root:
        # No user namespace: the bootstrap drops to a fresh uid, which needs these two.
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        namespaces += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        namespaces = ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", "65534", "--gid", "65534"]
    command = [bwrap, *namespaces, "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in {**_ENVIRONMENT, "HOME": SCRATCH, "TMPDIR": SCRATCH}.items():
        command += ["--setenv", name, value]
    command += ["--proc", "/proc", "--dev", "/dev"]
    for mount in _mounts():
        command += mount
    command += ["--perms", "0777", "--size", str(limits.scratch_bytes), "--tmpfs", SCRATCH]
    for name, fd in zip(names, fds):
        command += ["--perms", "0444", "--ro-bind-data", str(fd), f"{SCRATCH}/{name}"]
    command += ["--chdir", SCRATCH]
    return command


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot isolate a snippet here, or None when it can (probed once)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux, and this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "`bwrap` is not installed"
    command = _bubblewrap_command(bwrap, (), (), Limits(), os.geteuid() == 0)
    probe = [*command, str(_interpreter()), "-I", "-S", "-B", "-c", "print('ok')"]
    try:
        result = subprocess.run(probe, env={}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`bwrap` could not start: {exc}"
    if result.returncode != 0 or result.stdout != "ok\n":
        detail = result.stderr.strip() or f"exit status {result.returncode}"
        return f"`bwrap` cannot start a sandbox ({detail}); user namespaces may be disabled"
    return None


def require_isolation(isolation: Isolation) -> None:
    """Raise `SandboxUnavailable`, saying what to do, when `isolation` cannot run here."""
    if isolation != "bubblewrap":
        return
    problem = bubblewrap_problem()
    if problem is not None:
        raise SandboxUnavailable(
            f"the python tool runs model-written code in bubblewrap, which cannot run here: {problem}. "
            "Install it (Debian and Ubuntu: `apt-get install bubblewrap`) on a Linux machine that allows "
            'user namespaces, or set `sandbox = "unsafe-process"` in the model block to run the code in a '
            "plain child process, which hostile code can escape (docs/sandbox.md)"
        )


# -------------------------------------------------------------- unsafe process


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


# ---------------------------------------------------------------------- running


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


@contextlib.contextmanager
def _opened(files: Sequence[Path]) -> Iterator[list[int]]:
    fds: list[int] = []
    try:
        for file in files:
            fds.append(os.open(file, os.O_RDONLY))
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


async def run_python(
    code: str,
    *,
    files: Sequence[Path] = (),
    limits: Limits = Limits(),
    isolation: Isolation = "bubblewrap",
) -> SandboxResult:
    """Run a Python snippet in the sandbox and return what it printed.

    `files` are copied read-only into the working folder under their own names.
    Raises `SandboxUnavailable` when `isolation` cannot run on this machine.

    >>> asyncio.run(run_python("print(6 * 7)")).stdout
    '42\\n'
    """
    require_isolation(isolation)
    names = [Path(file).name for file in files]
    if len(set(names)) != len(names):
        raise ValueError(f"two mounted files share a name: {names}")
    if isolation == "bubblewrap":
        bwrap = shutil.which("bwrap")
        assert bwrap is not None  # require_isolation found it
        root = os.geteuid() == 0
        uid = random.SystemRandom().randrange(*_UID_RANGE) if root else None
        with _opened(files) as fds:
            command = _bubblewrap_command(bwrap, names, fds, limits, root)
            return await _run(
                [*command, str(_interpreter()), "-I", "-S", "-B", "-c", _BOOTSTRAP, _settings(limits, isolated=True, uid=uid)],
                code, limits, isolation, cwd=None, env={}, pass_fds=fds,
            )
    with tempfile.TemporaryDirectory(prefix="grpo-sandbox-", ignore_cleanup_errors=True) as scratch:
        for file, name in zip(files, names):
            os.symlink(Path(file).resolve(), Path(scratch) / name)
        environment = {**_ENVIRONMENT, "HOME": scratch, "TMPDIR": scratch}
        command = [*_network_namespace_prefix(), sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP, _settings(limits, isolated=False)]
        return await _run(command, code, limits, isolation, cwd=scratch, env=environment, pass_fds=())


async def _run(
    command: list[str],
    code: str,
    limits: Limits,
    isolation: Isolation,
    *,
    cwd: str | None,
    env: dict[str, str],
    pass_fds: Sequence[int],
) -> SandboxResult:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )
    try:
        return await _supervise(process, code, limits, isolation)
    finally:
        _kill_group(process)
        await process.wait()


async def _supervise(process: asyncio.subprocess.Process, code: str, limits: Limits, isolation: Isolation) -> SandboxResult:
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stdout, stderr = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
    readers = asyncio.gather(stdout.read(process.stdout), stderr.read(process.stderr))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(code.encode("utf-8", errors="replace"))
        await process.stdin.drain()
    process.stdin.close()
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), limits.timeout_s)
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
        stderr_text += f"\n[killed: the program ran longer than {limits.timeout_s:g} s]"
    return SandboxResult(
        stdout=stdout.text(),
        stderr=stderr_text.lstrip("\n"),
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=bool(stdout.dropped or stderr.dropped),
        isolation=isolation,
    )


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
