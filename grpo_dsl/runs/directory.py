"""The run directory: every file a run writes, written atomically.

```
runs/<learn>/<run-id>/
  plan.json        the plan the run executes (validated)
  run.json         what was run, from where, and its status
  events.jsonl     append-only log: every LLM call, skipped group, failure, stop
  usage.json       tokens, calls and USD by stage and model
  library.json     the latest library
  cache/           the content-addressed response cache
  steps/0001/      rollouts.json rewards.json summaries.json proposals.json
                   operations.json report.json library.json (written last)
```

A step is complete when its `library.json` exists and reads; a killed run resumes
after the last complete step, and the cache replays every call the interrupted step
had made. One process at a time works in a run directory (`lock`); a file that
cannot be read is a `RunError` naming it, never a traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import atomic_write_json, atomic_write_text, read_json

__all__ = ["EventLog", "RunDirectory", "RunError", "RunLocked", "read_events"]

LOCK_FILE = ".lock"


class RunError(GrpoError):
    """A run directory that cannot be used: a file is missing or damaged. The message names it."""


class RunLocked(RunError):
    """Another process works in the run directory; the message says which."""


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a log; a line torn by a killed process, or not UTF-8 JSON, is passed over."""
    events = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                event = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


class EventLog:
    """An append-only JSON-lines log; each event is one `write` of one line, fsynced.

    Reopening a log whose last line was torn by a killed process first ends that line.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            os.write(self._fd, b"\n")
        self._observers: list[Callable[[str, Mapping[str, Any]], None]] = []

    def observe(self, observer: Callable[[str, Mapping[str, Any]], None]) -> None:
        """Call `observer(event, fields)` after each event is written (the progress display)."""
        self._observers.append(observer)

    def append(self, event: str, **fields: Any) -> None:
        """Append one event with its wall-clock time.

        A write the disk refuses part way (full, or over a size limit) is undone, so
        the log never keeps half a line; the `OSError` goes up.
        """
        record = {"event": event, "time": round(time.time(), 3), **fields}
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8", errors="backslashreplace")
        size = os.fstat(self._fd).st_size
        try:
            rest = memoryview(line)
            while rest:  # a short write is followed by one that says why it stopped
                rest = rest[os.write(self._fd, rest) :]
            os.fsync(self._fd)
        except OSError as exc:
            os.ftruncate(self._fd, size)
            if exc.filename is None:
                exc.filename = str(self.path)
            raise
        for observer in self._observers:
            observer(event, fields)

    def close(self) -> None:
        os.close(self._fd)


@dataclass(frozen=True, slots=True)
class RunDirectory:
    """Paths and small accessors of one run directory."""

    path: Path

    @classmethod
    def create(
        cls, runs_root: Path, learn: str, plan_json: str, run_info: dict[str, Any], *, name: str | None = None
    ) -> RunDirectory:
        """Create a fresh run directory for `learn` under `runs_root` and write its plan.

        The directory is named after the time it starts, or `name` when given (which
        must not exist yet).
        """
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = runs_root / learn
        base.mkdir(parents=True, exist_ok=True)
        suffix = 0
        while True:
            candidate = base / (name or (stamp if suffix == 0 else f"{stamp}-{suffix}"))
            try:
                candidate.mkdir()
                break
            except FileExistsError:
                if name is not None:
                    raise
                suffix += 1
        run = cls(candidate)
        atomic_write_text(run.plan_path, plan_json)
        atomic_write_json(run.info_path, {**run_info, "status": "running"})
        return run

    @property
    def plan_path(self) -> Path:
        return self.path / "plan.json"

    @property
    def info_path(self) -> Path:
        return self.path / "run.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def usage_path(self) -> Path:
        return self.path / "usage.json"

    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    @property
    def library_path(self) -> Path:
        return self.path / "library.json"

    def step_dir(self, step: int) -> Path:
        return self.path / "steps" / f"{step:04d}"

    def info(self) -> dict[str, Any]:
        """`run.json`; a `RunError` when it is missing or damaged."""
        try:
            info = read_json(self.info_path)
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.info_path} cannot be read ({_reason(exc)}): {self.path} is not a usable run directory") from None
        if not isinstance(info, dict):
            raise RunError(f"{self.info_path} is damaged: it is not a JSON object")
        return info

    def update_info(self, **fields: Any) -> None:
        atomic_write_json(self.info_path, {**self.info(), **fields})

    def write_step(self, step: int, name: str, value: Any) -> None:
        atomic_write_json(self.step_dir(step) / f"{name}.json", value)

    def read_step(self, step: int, name: str) -> Any:
        """A step's file; a `RunError` naming it when it is missing or damaged."""
        path = self.step_dir(step) / f"{name}.json"
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise RunError(f"{path} cannot be read ({_reason(exc)}); delete {self.step_dir(step)} to run that step again") from None

    def completed_steps(self) -> list[int]:
        """Steps whose library was written, in order."""
        steps = self.path / "steps"
        if not steps.is_dir():
            return []
        return sorted(int(d.name) for d in steps.iterdir() if d.name.isdigit() and (d / "library.json").exists())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process; `RunLocked` (saying who holds it) when another does.

        The lock is an `flock` on `.lock`, so it ends with the process, however it ends.
        """
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip() or "another process"
                raise RunLocked(f"{self.path} is in use by {holder}: wait for it to end, or stop it first") from None
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            holder = f"process {os.getpid()} on {socket.gethostname()} (`{' '.join(sys.argv) or 'python'}`, since {stamp})"
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode("utf-8"), 0)
            yield
        finally:
            os.close(fd)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    return f"not JSON: {exc}"
