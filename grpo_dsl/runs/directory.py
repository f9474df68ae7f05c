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

A step is complete when its `library.json` exists; a killed run resumes after the
last complete step, and the cache replays every call the interrupted step had made.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grpo_dsl.core.files import atomic_write_json, atomic_write_text, read_json

__all__ = ["EventLog", "RunDirectory", "read_events"]


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a log; a line torn by a killed process is passed over."""
    events = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
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

    def append(self, event: str, **fields: Any) -> None:
        """Append one event with its wall-clock time."""
        record = {"event": event, "time": round(time.time(), 3), **fields}
        os.write(self._fd, (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self._fd)

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
        return dict(read_json(self.info_path))

    def update_info(self, **fields: Any) -> None:
        atomic_write_json(self.info_path, {**self.info(), **fields})

    def write_step(self, step: int, name: str, value: Any) -> None:
        atomic_write_json(self.step_dir(step) / f"{name}.json", value)

    def read_step(self, step: int, name: str) -> Any:
        return read_json(self.step_dir(step) / f"{name}.json")

    def completed_steps(self) -> list[int]:
        """Steps whose library was written, in order."""
        steps = self.path / "steps"
        if not steps.is_dir():
            return []
        return sorted(int(d.name) for d in steps.iterdir() if d.name.isdigit() and (d / "library.json").exists())
