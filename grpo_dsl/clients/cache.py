"""The response cache: one store shared by every run, and each run's own record.

An entry is addressed by `wire.request_key`: the sha256 of the request's namespace
(its stage's purpose and its dataset split), its `sample_key` and its JSON body
(model id, messages, every sampling parameter, tools, response format). So a
rerun of the same program, in any directory, asks nothing twice; G samples of one
prompt are G entries; and a validation sample never answers a training rollout.
Errors are never cached.

- `SharedCache` is one SQLite database in WAL mode (`responses.sqlite3`) in the
  user cache directory (`$GRPO_CACHE_DIR`, else the platform's user cache), or in a
  model's own `cache` folder. Several processes may read and write it at once:
  readers never wait, writers take turns. New entries are written in batches (every
  `FLUSH_SECONDS` or `FLUSH_ENTRIES`) and when the stack closes; an entry's last
  use, which `prune` goes by, is brought up to date when a hit finds it older than
  `USE_RESOLUTION`, so a hit is a read and nothing more. Each stack adds one line to its `sessions` table (hits,
  misses), which `grpo cache info` reports.
- `RunRecord` is `responses.jsonl` in a run directory: every call the run used (its
  key, namespace, sample key, request body and answer), from the endpoint or from
  the shared store, appended as it arrives (a line torn by a killed process is
  passed over). A run resumes and replays from its record alone,
  so it stays reproducible after the shared store is pruned or turned off.
- `ResponseCache` is the layer of the client stack: the record first, then the
  request's model's shared store, then the inner client. Concurrent identical
  requests in one process share one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grpo_dsl.clients.local import cache_dir as user_cache_dir
from grpo_dsl.clients.protocol import ChatRequest, ChatResponse, LLMClient, ModelConfig, StorageError, namespace
from grpo_dsl.clients.wire import body, canonical_json, request_key
from grpo_dsl.core.errors import GrpoError

__all__ = [
    "CACHE_FILE",
    "CacheError",
    "CacheInfo",
    "ResponseCache",
    "RunRecord",
    "SharedCache",
    "cache_directory",
    "cache_info",
    "prune_cache",
]

CACHE_FILE = "responses.sqlite3"
SCHEMA_VERSION = 2
FLUSH_SECONDS = 0.5
FLUSH_ENTRIES = 512
USE_RESOLUTION = 86400.0
"""Seconds: the last-use time of an entry is kept to within a day."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  key TEXT PRIMARY KEY,
  namespace TEXT NOT NULL,
  model TEXT NOT NULL,
  response TEXT NOT NULL,
  created REAL NOT NULL,
  used REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS responses_used ON responses (used);
CREATE TABLE IF NOT EXISTS sessions (
  started REAL NOT NULL,
  finished REAL NOT NULL,
  hits INTEGER NOT NULL,
  misses INTEGER NOT NULL,
  stored INTEGER NOT NULL
);
"""


class CacheError(GrpoError):
    """The shared cache cannot be opened or read: not a cache file, or a newer format."""


def cache_directory(setting: str | bool | None, base_dir: Path) -> Path | None:
    """The shared cache folder of a model whose `cache` attribute is `setting`.

    None (absent): the user cache directory; False: no shared cache; a path: that
    folder, relative to the program's folder `base_dir`.
    """
    if setting is None or setting is True:
        return user_cache_dir()
    if setting is False:
        return None
    return base_dir / setting


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise CacheError(f"{path} is a response cache of another format ({version}); move it away or set GRPO_CACHE_DIR")
        if version == 0:
            db.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    except sqlite3.DatabaseError as exc:
        raise CacheError(f"{path} cannot be used as the response cache: {exc}") from None
    return db


class SharedCache:
    """The cache every run shares: `responses.sqlite3` in `directory`, in WAL mode."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / CACHE_FILE
        self._db = _connect(self.path)
        self._new: list[tuple[str, str, str, str, float, float]] = []
        self._used: list[str] = []
        self._flushed = time.monotonic()
        self.started = time.time()
        self.hits = self.misses = self.stored = 0

    def get(self, key: str) -> str | None:
        """The stored answer (its JSON text) to the request with this key, if any."""
        row = self._db.execute("SELECT response, used FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        if time.time() - row[1] > USE_RESOLUTION:
            self._used.append(key)
            self._flush_when_due()
        return str(row[0])

    def put(self, key: str, space: str, model: str, response: str) -> None:
        """Store an answer (JSON text); written with the next batch."""
        now = time.time()
        self._new.append((key, space, model, response, now, now))
        self.stored += 1
        self._flush_when_due()

    def _flush_when_due(self) -> None:
        if len(self._new) + len(self._used) >= FLUSH_ENTRIES or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the pending entries and last-use times in one transaction."""
        self._flushed = time.monotonic()
        if not (self._new or self._used):
            return
        new, used, self._new, self._used = self._new, self._used, [], []
        now = time.time()
        with self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?)", new)
            self._db.executemany("UPDATE responses SET used = ? WHERE key = ?", [(now, key) for key in used])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Write what is pending, note this session's hits and misses, and close the database."""
        self.flush()
        with self._transaction():
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (self.started, time.time(), self.hits, self.misses, self.stored)
            )
        self._db.close()


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What `grpo cache info` shows: entries by namespace, bytes on disk, the last session."""

    path: Path
    entries: int
    size: int
    namespaces: Mapping[str, int]
    oldest_use: float | None
    last_session: Mapping[str, float] | None

    @property
    def last_hit_rate(self) -> float | None:
        """The share of the last session's lookups that were answered from the cache."""
        if self.last_session is None:
            return None
        lookups = self.last_session["hits"] + self.last_session["misses"]
        return self.last_session["hits"] / lookups if lookups else None


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists())


def cache_info(directory: Path) -> CacheInfo | None:
    """The shared cache in `directory`, or None when there is none."""
    path = directory / CACHE_FILE
    if not path.is_file():
        return None
    db = _connect(path)
    try:
        entries, oldest = db.execute("SELECT COUNT(*), MIN(used) FROM responses").fetchone()
        spaces = dict(db.execute("SELECT namespace, COUNT(*) FROM responses GROUP BY namespace ORDER BY namespace"))
        row = db.execute("SELECT started, finished, hits, misses, stored FROM sessions ORDER BY finished DESC LIMIT 1").fetchone()
    finally:
        db.close()
    last = dict(zip(("started", "finished", "hits", "misses", "stored"), row)) if row else None
    return CacheInfo(path, int(entries), _size(path), spaces, oldest, last)


def prune_cache(directory: Path, older_than: float) -> int:
    """Delete the entries of the shared cache in `directory` not used for `older_than`
    seconds; return how many. The file shrinks unless another process has it open."""
    path = directory / CACHE_FILE
    if not path.is_file():
        return 0
    db = _connect(path)
    try:
        removed = db.execute("DELETE FROM responses WHERE used < ?", (time.time() - older_than,)).rowcount
        db.execute("DELETE FROM sessions WHERE finished < ?", (time.time() - older_than,))
        with contextlib.suppress(sqlite3.OperationalError):
            db.execute("VACUUM")
    finally:
        db.close()
    return int(removed)


class RunRecord:
    """`responses.jsonl` of a run directory: every answer the run used, by cache key.

    `also` are the records of other runs, read but never written: a replay answers
    from the run it replays (and records in its own file what it used).
    """

    def __init__(self, path: Path, also: Sequence[Path] = ()) -> None:
        self.path = path
        self._answers: dict[str, ChatResponse] = {}
        for source in also:
            self._read(source)
        self._own: set[str] = set()
        self._own.update(self._read(path))
        self._fd: int | None = None

    def _read(self, source: Path) -> list[str]:
        keys = []
        if source.is_file():
            with source.open("rb") as lines:
                for line in lines:
                    try:
                        entry = json.loads(line)
                        self._answers[entry["key"]] = ChatResponse.from_json(entry["response"], cached=True)
                    except (ValueError, LookupError, TypeError):
                        continue
                    keys.append(entry["key"])
        return keys

    def use(self, key: str, request: ChatRequest, model_id: str) -> ChatResponse | None:
        """The recorded answer with this key, if any; one read from another run's record
        is added to this run's."""
        response = self._answers.get(key)
        if response is not None and key not in self._own:
            self.add(key, request, model_id, response, canonical_json(response.to_json()))
        return response

    def add(self, key: str, request: ChatRequest, model_id: str, response: ChatResponse, text: str) -> None:
        """Record a call and its answer (`text`, its JSON) with one append, so a killed run keeps it."""
        if key in self._own:
            return
        self._answers[key] = response
        self._own.add(key)
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if os.fstat(self._fd).st_size:
                os.write(self._fd, b"\n")  # ends a line a killed process may have torn
        head = f'{{"key":"{key}","namespace":{json.dumps(namespace(request))},"sample_key":{json.dumps(request.sample_key)},'
        os.write(self._fd, b"%s\"request\":%s,\"response\":%s}\n" % (head.encode(), body(request, model_id), text.encode()))

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ResponseCache:
    """Answers a request from the run's record, else its model's shared cache, else `inner`.

    `models` are the model blocks (for the model id each sends and its weights);
    `shared` maps model blocks to their shared cache (a block without one shares
    nothing). Every answer is recorded in `record` and stored in the shared cache.
    `on_hit` is told of every answer served without a call (for accounting).
    """

    def __init__(
        self,
        inner: LLMClient,
        models: Mapping[str, ModelConfig],
        *,
        record: RunRecord | None,
        shared: Mapping[str, SharedCache],
        on_hit: Callable[[ChatRequest, ChatResponse], None] | None = None,
    ) -> None:
        self.inner = inner
        self.models = dict(models)
        self.record = record
        self.shared = dict(shared)
        self.on_hit = on_hit
        self._pending: dict[str, asyncio.Future[ChatResponse]] = {}

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The cached answer to `request`, or the inner client's (then stored)."""
        model = self.models.get(request.model)
        model_id = model.name if model is not None else request.model
        key = request_key(request, model_id, model.weights if model is not None else None)
        while (pending := self._pending.get(key)) is not None:
            try:
                return self._hit(request, await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
        stored = self._lookup(request, key, model_id)
        if stored is not None:
            return self._hit(request, stored)
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            response = await self.inner.complete(request)
            self._store(request, key, model_id, response)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            future.set_result(response)
            return response
        finally:
            del self._pending[key]

    def _lookup(self, request: ChatRequest, key: str, model_id: str) -> ChatResponse | None:
        if self.record is not None and (recorded := self.record.use(key, request, model_id)) is not None:
            return recorded
        shared = self.shared.get(request.model)
        text = shared.get(key) if shared is not None else None
        if text is None:
            return None
        response = ChatResponse.from_json(json.loads(text), cached=True)
        if self.record is not None:
            self.record.add(key, request, model_id, response, text)
        return response

    def _store(self, request: ChatRequest, key: str, model_id: str, response: ChatResponse) -> None:
        text = canonical_json(response.to_json())
        shared = self.shared.get(request.model)
        try:
            if self.record is not None:
                self.record.add(key, request, model_id, response, text)
            if shared is not None:
                shared.put(key, namespace(request), model_id, text)
        except OSError as exc:  # only the record writes files directly
            where = exc.filename or (self.record.path if self.record is not None else "the run's record")
            raise StorageError(f"cannot write {where}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the response cache {shared.path if shared else ''}: {exc}") from None

    def _hit(self, request: ChatRequest, response: ChatResponse) -> ChatResponse:
        hit = ChatResponse(
            response.content,
            response.tool_calls,
            response.finish_reason,
            response.prompt_tokens,
            response.completion_tokens,
            cached=True,
        )
        if self.on_hit is not None:
            self.on_hit(request, hit)
        return hit

    def close(self) -> None:
        """Close the record and every shared cache (writing what is pending)."""
        if self.record is not None:
            self.record.close()
        for shared in {id(s): s for s in self.shared.values()}.values():
            shared.close()
