"""Killing runs: a write at every file system call (a forked child that SIGKILLs itself),
and a `grpo` command once its run has logged some events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from grpo_dsl.runs.directory import read_events


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


def grpo_command(*args: str | Path) -> list[str]:
    """The command line of `grpo ARGS` with this interpreter."""
    return [sys.executable, "-m", "grpo_dsl.cli", *map(str, args)]


def kill_after(args: list[str], run_dir: Path | None, new_events: int) -> tuple[Path, float | None]:
    """Start `args`, SIGKILL it once the run's log has `new_events` more lines; return the
    run directory and the kill time (None when the run ended first)."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        assert process.stdout is not None
        run_dir = run_dir or Path(process.stdout.readline().strip())
        log = run_dir / "events.jsonl"
        start = len(read_events(log))
        while process.poll() is None:
            if len(read_events(log)) >= start + new_events:
                process.send_signal(signal.SIGKILL)
                killed_at = time.time()
                process.wait()
                return run_dir, killed_at
            time.sleep(0.005)
    return run_dir, None
