"""Batch execution: a model with `batch = true` answers each stage through one batch job.

A Training-Free GRPO step is a barrier of B x G independent rollouts, then
independent per-group learner calls, then consolidation: each stage's requests
arrive together. `Batching` collects the requests that reach it (the uncached
ones: the cache sits above it) per stage until none has arrived for
`WINDOW_SECONDS`, writes them as one JSON-lines file whose `custom_id`s are the
requests' cache keys, uploads it, starts a job, and polls it, first after
`FIRST_POLL_SECONDS` and then less and less often (up to every `MAX_POLL_SECONDS`).
A window too short for a stage only splits it into two jobs.
Each request waits for its job and gets its answer, marked `batched` so that it
is priced at the model's batch price.

What a job does not answer (a request that failed inside it, or the rest of a job
that expired, failed or was cancelled) falls back to an ordinary call through
`interactive`. A job the endpoint will not take (no Batch API, a refused file)
also falls back, and batching stops for that model.

The job's life is told to `on_event` so the run's event log holds it:
`batch_file` (the uploaded file and its keys, before the job exists),
`batch_submitted` (the job id), `batch_resumed`, `batch_finished` and
`batch_unavailable`. A resumed run passes those back as `submitted`: a request
whose key is in one of them waits for that job (found by its file when the run
was killed before it learned the job's id) and is never submitted again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from grpo_dsl.clients.protocol import ChatRequest, ChatResponse, LLMClient, ModelConfig, TransientError
from grpo_dsl.clients.wire import body, parse_completion, request_key
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.tasks import start_task

__all__ = [
    "BatchAPI",
    "BatchRejected",
    "BatchStatus",
    "Batching",
    "SubmittedBatch",
    "submitted_batches",
]

WINDOW_SECONDS = 0.25
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 30.0
POLL_GROWTH = 1.5
MAX_REQUESTS = 50_000
"""The most requests one job may hold (OpenAI's limit); a larger stage is split."""
FINISHED = frozenset({"completed", "expired", "failed", "cancelled"})

EventSink = Callable[[dict[str, Any]], None]


class BatchRejected(GrpoError):
    """The endpoint refused a Batch API request (no Batch API, a bad file, an unknown job)."""


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A job's status and, once it has them, its output and error files."""

    status: str
    output_file: str | None = None
    error_file: str | None = None


class BatchAPI(Protocol):
    """What `Batching` needs of an endpoint's Batch API (`batch_api.OpenAIBatchAPI`)."""

    async def upload(self, name: str, data: bytes) -> str: ...
    async def create(self, file_id: str, metadata: dict[str, str]) -> str: ...
    async def find(self, file_id: str) -> str | None: ...
    async def status(self, batch_id: str) -> BatchStatus: ...
    async def download(self, file_id: str) -> bytes: ...
    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SubmittedBatch:
    """A job a run submitted, as its event log tells it: enough to wait for it again."""

    model: str
    stage: str
    file: str
    batch: str | None
    keys: tuple[str, ...]


def submitted_batches(events: Iterable[Mapping[str, Any]]) -> list[SubmittedBatch]:
    """Every job the events record, in order (with its job id once it was known)."""
    jobs: dict[str, SubmittedBatch] = {}
    for event in events:
        kind = event.get("event")
        if kind == "batch_file":
            jobs[event["file"]] = SubmittedBatch(event["model"], event["stage"], event["file"], None, tuple(event["keys"]))
        elif kind == "batch_submitted" and event.get("file") in jobs:
            jobs[event["file"]] = dataclasses.replace(jobs[event["file"]], batch=event["batch"])
    return list(jobs.values())


@dataclass(eq=False, slots=True)
class _Job:
    stage: str
    keys: set[str] = field(default_factory=set)
    requests: dict[str, ChatRequest] = field(default_factory=dict)
    file: str | None = None
    batch: str | None = None
    resumed: bool = False
    touched: float = 0.0
    answers: dict[str, ChatResponse] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Batching:
    """Answers the requests of one model block through batch jobs, per stage."""

    def __init__(
        self,
        interactive: LLMClient,
        model: ModelConfig,
        api: BatchAPI,
        *,
        on_event: EventSink | None = None,
        submitted: Sequence[SubmittedBatch] = (),
    ) -> None:
        self.interactive = interactive
        self.model = model
        self.api = api
        self.on_event = on_event
        self.unavailable: str | None = None
        self._jobs: dict[str, _Job] = {}
        self._open: dict[str, _Job] = {}
        for earlier in submitted:
            job = _Job(earlier.stage, set(earlier.keys), file=earlier.file, batch=earlier.batch, resumed=True)
            self._jobs.update(dict.fromkeys(earlier.keys, job))

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The answer from the job that holds `request` (or a new one), else an ordinary call."""
        key = request_key(request, self.model.name, self.model.weights)
        job = self._jobs.get(key)
        if job is None:
            if self.unavailable is not None:
                return await self.interactive.complete(request)
            job = self._collecting(request.stage)
            job.requests[key] = request
            job.keys.add(key)
            job.touched = asyncio.get_running_loop().time()
            self._jobs[key] = job
            if len(job.requests) >= MAX_REQUESTS:
                self._open.pop(request.stage, None)
        if job.task is None:
            job.task = start_task(self._run(job))
        await job.done.wait()
        answer = job.answers.get(key)
        return answer if answer is not None else await self.interactive.complete(request)

    def _collecting(self, stage: str) -> _Job:
        job = self._open.get(stage)
        if job is None:
            job = self._open[stage] = _Job(stage)
        return job

    async def _run(self, job: _Job) -> None:
        """Collect, submit and wait for a job; whatever ends it, its requests are released
        (those it did not answer then fall back to ordinary calls)."""
        try:
            if not job.resumed:
                await self._collect(job)
            await self._submit(job)
            job.answers = await self._answers(job)
        except BatchRejected as exc:
            self.unavailable = str(exc)
            self._emit("batch_unavailable", job, error=str(exc))
        except TransientError as exc:
            self._emit("batch_not_submitted", job, error=str(exc))
        finally:
            job.done.set()

    async def _collect(self, job: _Job) -> None:
        """Wait until no request has joined the job for `WINDOW_SECONDS` (or it is full)."""
        loop = asyncio.get_running_loop()
        while len(job.requests) < MAX_REQUESTS and (wait := job.touched + WINDOW_SECONDS - loop.time()) > 0:
            await asyncio.sleep(wait)
        if self._open.get(job.stage) is job:
            del self._open[job.stage]

    async def _submit(self, job: _Job) -> None:
        """Make sure the job exists at the endpoint: upload and start it, or find it again."""
        if job.batch is not None:
            self._emit("batch_resumed", job)
            return
        if job.file is None:
            lines = [_line(key, body(request, self.model.name)) for key, request in job.requests.items()]
            job.file = await self.api.upload(f"grpo-{self.model.block}-{job.stage}.jsonl", b"".join(lines))
            self._emit("batch_file", job, requests=len(lines), keys=list(job.requests))
        else:
            # Killed after the upload: the job may have been started before the kill.
            job.batch = await self.api.find(job.file)
            if job.batch is not None:
                self._emit("batch_resumed", job)
                return
        try:
            job.batch = await self.api.create(job.file, {"grpo_model": self.model.block, "grpo_stage": job.stage})
        except TransientError:
            # The job may exist even though the answer was lost: look it up by its file.
            job.batch = await self.api.find(job.file)
            if job.batch is None:
                raise
        self._emit("batch_submitted", job)

    async def _answers(self, job: _Job) -> dict[str, ChatResponse]:
        """Poll the job until it ends; the answers it has, by key."""
        assert job.batch is not None
        delay = FIRST_POLL_SECONDS
        while True:
            try:
                status = await self.api.status(job.batch)
            except TransientError:
                status = BatchStatus("unknown")
            if status.status in FINISHED:
                break
            await asyncio.sleep(delay)
            delay = min(delay * POLL_GROWTH, MAX_POLL_SECONDS)
        answers: dict[str, ChatResponse] = {}
        if status.output_file is not None:
            answers = _parse_output(await self.api.download(status.output_file))
        self._emit("batch_finished", job, status=status.status, answered=len(answers), missing=len(job.keys - set(answers)))
        return answers

    def _emit(self, event: str, job: _Job, **fields: Any) -> None:
        if self.on_event is not None:
            found = {"file": job.file} if job.file else {}
            found |= {"batch": job.batch} if job.batch else {}
            self.on_event({"event": event, "model": self.model.block, "stage": job.stage, **found, **fields})

    async def aclose(self) -> None:
        """Stop waiting for jobs (they go on at the endpoint) and close the connections."""
        tasks = [job.task for job in {id(j): j for j in self._jobs.values()}.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.api.aclose()


def _line(key: str, request_body: bytes) -> bytes:
    return b'{"custom_id":"%s","method":"POST","url":"/v1/chat/completions","body":%s}\n' % (key.encode(), request_body)


def _parse_output(data: bytes) -> dict[str, ChatResponse]:
    """The successful answers of a job's output file, by `custom_id`; anything else is left out."""
    answers = {}
    for line in data.splitlines():
        try:
            entry = json.loads(line)
            response = entry.get("response") or {}
            if response.get("status_code") != 200:
                continue
            answers[str(entry["custom_id"])] = dataclasses.replace(parse_completion(response["body"]), batched=True)
        except (ValueError, LookupError, TypeError, AttributeError, TransientError):
            continue
    return answers
