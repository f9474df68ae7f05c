"""What learning, evaluation and replay share about running: the client stack, the
events it writes, usage recounted from the log, and ending cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_dsl.clients.accounting import Budget, Usage
from grpo_dsl.clients.batch import submitted_batches
from grpo_dsl.clients.cache import RunRecord, cache_directory
from grpo_dsl.clients.local import local_endpoints
from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    EndpointError,
    LLMClient,
    ModelConfig,
    StorageError,
)
from grpo_dsl.clients.stack import build_client
from grpo_dsl.core.files import read_json
from grpo_dsl.core.tasks import owning_tasks, settle_tasks
from grpo_dsl.plan import LearnView, Plan
from grpo_dsl.runs.directory import EventLog, RunDirectory, read_events
from grpo_dsl.runs.failures import TooManyFailures
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.tracing import TracedClient, span


def latest_completed_run(runs_root: Path, learn: str) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The most recent *completed* run of `learn` under `runs_root` (None if there is none),
    and the newer runs passed over with their status, newest first."""
    passed: list[tuple[Path, str]] = []
    for run in reversed(_runs(runs_root, learn)):
        status = run_status(run)
        if status == "completed":
            return run, passed
        passed.append((run, status))
    return None, passed


def run_status(run_dir: Path) -> str:
    """The status a run directory records, or `damaged` when its run.json cannot be read."""
    try:
        return str(read_json(run_dir / "run.json").get("status") or "unknown")
    except (OSError, ValueError, AttributeError):
        return "damaged"


def _runs(runs_root: Path, learn: str) -> list[Path]:
    base = runs_root / learn
    return sorted(p for p in base.iterdir() if (p / "run.json").exists()) if base.is_dir() else []


@dataclass(slots=True)
class RunEnd:
    """How a block of run work ended: `completed`, `stopped`, `interrupted` or `failed`,
    with the exception that ended it (None when it completed)."""

    status: str = "completed"
    message: str | None = None
    error: BaseException | None = None


@contextlib.asynccontextmanager
async def ending_cleanly(
    events: EventLog, resume_command: str | None, failures: tuple[type[Exception], ...] = ()
) -> AsyncIterator[RunEnd]:
    """Turn the ways a run can end into a `RunEnd`, never an exception.

    A budget stops the run; a fatal endpoint error, too many failures, one of
    `failures`, a file that cannot be written (a full disk) or any other exception
    fails it (an unexpected one is logged with its traceback); Ctrl-C interrupts it,
    with `resume_command` (if any) in the message. The tasks the run started and that
    are still going are cancelled and waited for before the block ends (the siblings of
    a failed `gather`); the event loop's other tasks are left alone (`core.tasks`).
    """
    end = RunEnd()
    fatal: tuple[type[Exception], ...] = (EndpointError, StorageError, TooManyFailures, *failures)
    with owning_tasks():
        try:
            yield end
        except BudgetExceeded as exc:
            end.status, end.message, end.error = "stopped", str(exc), exc
        except fatal as exc:
            end.status, end.message, end.error = "failed", str(exc), exc
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:
            end.status, end.error = "interrupted", exc
            end.message = f"interrupted; continue with `{resume_command}`" if resume_command else "interrupted"
        except OSError as exc:
            end.status, end.error = "failed", exc
            end.message = f"cannot write {exc.filename or 'a file of the run'}: {exc.strerror or exc}"
        except Exception as exc:
            end.status, end.message, end.error = "failed", f"{type(exc).__name__}: {exc}", exc
            with contextlib.suppress(OSError):
                events.append("error", traceback=traceback.format_exc())
        finally:
            await settle_tasks()


def usage_from_events(plan: Plan, events_path: Path) -> Usage:
    """What a run has spent so far, counted from its event log.

    The log records every answered call, so a run killed between two writes of
    `usage.json` still resumes knowing every call it paid for.
    """
    usage = Usage(model_documents(plan))
    for event in read_events(events_path):
        if event.get("event") == "call":
            usage.record(
                ChatRequest(model=str(event["model"]), messages=(), stage=str(event["stage"])),
                ChatResponse(
                    content=None,
                    tool_calls=(),
                    finish_reason=None,
                    prompt_tokens=int(event.get("prompt_tokens") or 0),
                    completion_tokens=int(event.get("completion_tokens") or 0),
                    cached=bool(event.get("cached")),
                    batched=bool(event.get("batched")),
                ),
            )
    return usage


@contextlib.asynccontextmanager
async def client_stack(
    plan: Plan,
    base_dir: Path,
    run: RunDirectory,
    usage: Usage,
    budget: Budget | None,
    events: EventLog,
    progress: Progress,
    *,
    shared_cache: bool = True,
    also_read: Sequence[Path] = (),
) -> AsyncIterator[tuple[LLMClient, dict[str, Mapping[str, Any]]]]:
    """The run's client and its models as endpoints (local models started and pointed at);
    `progress` observes the run's events from then on.

    Answers are recorded in the run's `responses.jsonl` and, with `shared_cache`,
    looked up in and stored to each model's shared cache (`cache` of the model block).
    `also_read` are other runs' records to answer from (a replay's original run).
    Batch jobs the run's log records are waited for again, never submitted twice.

    Every endpoint is checked first (`ClientStack.preflight`), so a wrong URL, key or
    model name fails in seconds, before any step, with an `EndpointError`. When a
    budget stops the run, the calls in flight (allowed by the budget, and being paid
    for) finish into the record and the cache before the connections close, while
    every new call is refused: a resumption does not pay for them again. When
    anything else ends it (an error, Ctrl-C), the calls in flight are cancelled and
    settled first; the connections close when the block ends, in every case.
    """
    documents = model_documents(plan)
    folders = {block: cache_directory(model.get("cache"), base_dir) for block, model in documents.items()}
    with owning_tasks():
        async with local_endpoints(documents, base_dir=base_dir) as models:
            client = build_client(
                models,
                cache_dirs={block: folder for block, folder in folders.items() if folder is not None} if shared_cache else {},
                record=RunRecord(run.record_path, also_read),
                usage=usage,
                budget=budget,
                on_event=lambda event: events.append(str(event.get("event", "client")), **{k: v for k, v in event.items() if k != "event"}),
                submitted=submitted_batches(read_events(run.events_path)),
            )
            endpoints: dict[str, Mapping[str, Any]] = dict(models)
            async with client:
                try:
                    with span("preflight", {"grpo.models": sorted(endpoints)}, client=True):  # a wrong URL or key shows in the trace
                        await client.preflight()
                    events.append("preflight_passed", models=sorted(endpoints))
                    events.observe(progress.event)
                    yield TracedClient(EventedClient(client, events), client.models, usage), endpoints
                except BudgetExceeded:
                    await settle_tasks(cancel=False)
                    raise
                except (Exception, KeyboardInterrupt, asyncio.CancelledError):
                    # The calls still in flight (siblings of a failed gather, the other
                    # preflights) end before their connections close.
                    await settle_tasks()
                    raise


class EventedClient:
    """An `LLMClient` that records every call in the run's events (which feed the progress)."""

    def __init__(self, inner: LLMClient, events: EventLog):
        self.inner = inner
        self.events = events

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Forward `request`, then log one `call` event with its stage, key and tokens.

        The line is written at once but not forced to disk on its own (the next
        milestone event does that): a killed process keeps it, and a call costs no fsync.
        """
        response = await self.inner.complete(request)
        self.events.append(
            "call",
            durable=False,
            stage=request.stage,
            model=request.model,
            sample_key=request.sample_key,
            cached=response.cached,
            batched=response.batched,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
        )
        return response


def model_documents(plan: Plan) -> dict[str, Mapping[str, Any]]:
    """The plan's model blocks a run may call (`Plan.used_models`), as the JSON the client
    stack reads (`ModelConfig.from_plan`)."""
    return {name: model.document for name, model in plan.used_models().items()}


def structured_mode(models: Mapping[str, Mapping[str, Any]], block: str) -> str:
    """How structured outputs are asked of model `block` of the client stack's `models`."""
    return ModelConfig.from_plan(block, models[block]).structured


def judge_fields(plan: Plan, learn: LearnView) -> frozenset[str] | None:
    """The dataset fields a judge may see in a learn: every one (None), or, without ground
    truth, only those the task's prompt shows, so no reference answer reaches a prompt."""
    return None if learn.ground_truth else frozenset(plan.task(learn.task).variables)


def run_budget(learn: LearnView) -> Budget:
    """The budget a learn's run stops at."""
    return Budget(usd=learn.budget.usd, tokens=learn.budget.tokens, calls=learn.budget.calls)
