"""The response cache: content-addressed, on disk, one file per entry.

The key is the sha256 of the normalised request: the model id, the messages, every
sampling parameter, the tools, the response format and the `sample_key`; not the
stage, which is only for accounting. Entries are written atomically (temp file,
fsync, rename), so concurrent writers and processes never see a partial entry.
Errors are never cached. Concurrent identical requests in one process share one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from grpo_dsl.clients.protocol import ChatRequest, ChatResponse, LLMClient
from grpo_dsl.core.files import atomic_write_text

__all__ = ["ResponseCache", "cache_key"]

CACHE_SCHEMA = "grpo-cache/1"


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def normalised(request: ChatRequest, model_id: str) -> dict[str, Any]:
    """The parts of a request that determine its answer, in a canonical form."""
    return {
        "model": model_id,
        "messages": request.messages,
        "temperature": _number(request.temperature),
        "top_p": _number(request.top_p),
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "response_format": request.response_format,
        "tools": request.tools,
        "sample_key": request.sample_key,
    }


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain)


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def cache_key(request: ChatRequest, model_id: str) -> str:
    """The hex sha256 naming a request's cache entry; `model_id` is the id sent to the endpoint."""
    return hashlib.sha256(_canonical_json(normalised(request, model_id)).encode()).hexdigest()


class ResponseCache:
    """Answers a request from `directory` when it was answered before; otherwise asks `inner` and stores the answer.

    `model_ids` maps model block names to the model ids they send, so renaming a block
    keeps its entries and changing the model id does not. `on_hit` is told of every
    answer served without a call (for accounting).
    """

    def __init__(
        self,
        inner: LLMClient,
        directory: Path,
        model_ids: Mapping[str, str],
        on_hit: Callable[[ChatRequest, ChatResponse], None] | None = None,
    ) -> None:
        self.inner = inner
        self.directory = directory
        self.model_ids = dict(model_ids)
        self.on_hit = on_hit
        self._pending: dict[str, asyncio.Future[ChatResponse]] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the entry with this key lives."""
        return self.directory / key[:2] / f"{key}.json"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The cached answer to `request`, or the inner client's (then stored)."""
        model_id = self.model_ids.get(request.model, request.model)
        key = cache_key(request, model_id)
        while (pending := self._pending.get(key)) is not None:
            try:
                return self._hit(request, await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
        stored = self._read(key)
        if stored is not None:
            return self._hit(request, stored)
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            response = await self.inner.complete(request)
            entry = {"schema": CACHE_SCHEMA, "key": key, "request": normalised(request, model_id), "response": response.to_json()}
            await asyncio.to_thread(atomic_write_text, self.path(key), _canonical_json(entry))
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

    def _read(self, key: str) -> ChatResponse | None:
        try:
            entry = json.loads(self.path(key).read_bytes())
            return ChatResponse.from_json(entry["response"], cached=True)
        except (OSError, ValueError, LookupError, TypeError):
            return None
