"""The shared response cache's store: SQLite in WAL mode against `diskcache` and one file per entry.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_cache.py [--entries 5000] [--size 1500] [--processes 4]

For each store: microseconds to write an entry, to read a stored one and to miss,
in one process; then `--processes` processes each writing its share of the entries
(half of them shared with another process, as two runs of one program would) at
the same time: wall time, whether every process finished, entries left, and
whether the store is intact afterwards.

- `grpo (sqlite wal)`: `clients.cache.SharedCache`, writes batched as in a run.
- `diskcache` and `diskcache (transact)`: `diskcache.Cache`, one transaction per
  entry, or one per 512 entries as `SharedCache` batches them.
- `file per entry`: the earlier store, one JSON file per entry written atomically.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import diskcache

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from grpo_dsl.clients.cache import CACHE_FILE, SharedCache  # noqa: E402
from grpo_dsl.core.files import atomic_write_text  # noqa: E402

BATCH = 512


def _entries(count: int, size: int, offset: int = 0) -> list[tuple[str, str]]:
    text = "x" * size
    return [(f"{i + offset:064x}", json.dumps({"content": f"{i} {text}", "tool_calls": [], "finish_reason": "stop"})) for i in range(count)]


class _Store:
    """One store behind the three operations the benchmark times."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, key: str, value: str) -> None: ...
    def get(self, key: str) -> str | None: ...
    def close(self) -> None: ...
    def intact(self) -> tuple[bool, int]: ...


class _Grpo(_Store):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.cache = SharedCache(folder)

    def put(self, key: str, value: str) -> None:
        self.cache.put(key, "rollout/train", "model", value)

    def get(self, key: str) -> str | None:
        return self.cache.get(key)

    def close(self) -> None:
        self.cache.close()

    def intact(self) -> tuple[bool, int]:
        with sqlite3.connect(self.folder / CACHE_FILE) as db:
            ok = db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            return ok, int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


class _Disk(_Store):
    transact = False

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.cache = diskcache.Cache(str(folder), timeout=60)
        self.pending: list[tuple[str, str]] = []

    def put(self, key: str, value: str) -> None:
        if not self.transact:
            self.cache.set(key, value)
            return
        self.pending.append((key, value))
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self.cache.transact():
            for key, value in self.pending:
                self.cache.set(key, value)
        self.pending = []

    def get(self, key: str) -> str | None:
        value = self.cache.get(key)
        return value if isinstance(value, str) else None

    def close(self) -> None:
        if self.pending:
            self.flush()
        self.cache.close()

    def intact(self) -> tuple[bool, int]:
        with diskcache.Cache(str(self.folder)) as cache:
            return not cache.check(), len(cache)


class _DiskTransact(_Disk):
    transact = True


class _Files(_Store):
    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def put(self, key: str, value: str) -> None:
        atomic_write_text(self.path(key), value)

    def get(self, key: str) -> str | None:
        try:
            return self.path(key).read_text()
        except OSError:
            return None

    def close(self) -> None:
        pass

    def intact(self) -> tuple[bool, int]:
        files = list(self.folder.glob("*/*.json"))
        return all(json.loads(f.read_text()) for f in files), len(files)


STORES: dict[str, Callable[[Path], _Store]] = {
    "grpo (sqlite wal)": _Grpo,
    "diskcache": _Disk,
    "diskcache (transact)": _DiskTransact,
    "file per entry": _Files,
}


@contextmanager
def _timed() -> Iterator[list[float]]:
    elapsed: list[float] = []
    start = time.perf_counter()
    yield elapsed
    elapsed.append(time.perf_counter() - start)


@dataclass
class Single:
    write_us: float
    hit_us: float
    miss_us: float


def single(name: str, folder: Path, entries: list[tuple[str, str]]) -> Single:
    store = STORES[name](folder)
    with _timed() as write:
        for key, value in entries:
            store.put(key, value)
        store.close()
    store = STORES[name](folder)
    with _timed() as hit:
        found = sum(store.get(key) is not None for key, _ in entries)
    with _timed() as miss:
        for key, _ in entries:
            store.get("f" + key[1:])
    store.close()
    assert found == len(entries), f"{name}: {found} of {len(entries)} read back"
    n = len(entries)
    return Single(1e6 * write[0] / n, 1e6 * hit[0] / n, 1e6 * miss[0] / n)


def _writer(name: str, folder: str, count: int, size: int, offset: int) -> None:
    store = STORES[name](Path(folder))
    for key, value in _entries(count, size, offset):
        if store.get(key) is None:
            store.put(key, value)
    store.close()


def concurrent(name: str, folder: Path, entries: int, size: int, processes: int) -> tuple[float, int, bool, int]:
    """`processes` writers at once, each with `entries / processes * 2` keys, half shared with the next."""
    share = entries // processes
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(name, str(folder), 2 * share, size, i * share)) for i in range(processes)]
    with _timed() as wall:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finished = sum(worker.exitcode == 0 for worker in workers)
    ok, count = STORES[name](folder).intact()
    return wall[0], finished, ok, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1500, help="characters of each answer")
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    entries = _entries(args.entries, args.size)
    print(f"{args.entries} entries of about {args.size} characters; {args.processes} processes at once ({os.cpu_count()} cores)")
    print(f"{'store':<22}{'write us':>10}{'hit us':>9}{'miss us':>9}{'at once s':>11}{'finished':>10}{'entries':>9}{'intact':>8}")
    for name in STORES:
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
            result = single(name, Path(one), entries)
            wall, finished, ok, count = concurrent(name, Path(many), args.entries, args.size, args.processes)
        print(
            f"{name:<22}{result.write_us:>10.1f}{result.hit_us:>9.1f}{result.miss_us:>9.1f}"
            f"{wall:>11.2f}{f'{finished}/{args.processes}':>10}{count:>9}{'yes' if ok else 'NO':>8}"
        )


if __name__ == "__main__":
    main()
