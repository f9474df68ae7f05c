"""Kill a write at every file system call: run it in a forked child that SIGKILLs itself."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any


def run_killed(action: Callable[[], object], kill_at: int) -> tuple[int, int]:
    """Run `action` in a forked process that SIGKILLs itself just before its `kill_at`-th
    file system call (open, fsync, replace, rename; 0: never); return its wait status
    and how many such calls it made."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        calls = 0

        def counted(original: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                nonlocal calls
                calls += 1
                if calls == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)

            return call

        try:
            for name in ("open", "fsync", "replace", "rename"):
                setattr(os, name, counted(getattr(os, name)))
            action()
            os.write(writer, str(calls).encode())
        finally:
            os._exit(0)
    os.close(writer)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(reader) as pipe:
        written = pipe.read()
    return status, int(written or 0)
