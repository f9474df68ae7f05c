"""The production `LLMClient`: chat completions posted to an OpenAI-compatible endpoint.

One `HTTPAdapter` per model block makes exactly one HTTP attempt per call (the
retry layer decides about more) on an `aiohttp` connection pool that never holds
more connections than the model's `concurrency`. It posts the request's canonical
body (`wire.body`, made once per request) and parses the reply once into a
`ChatResponse`, so a call costs one JSON encoding and one decoding. Failures
become `TransientError` (retry) or `EndpointError` (stop, naming the model block
and what to check).

Why not `openai.AsyncOpenAI` for these calls: measured with
`benchmarks/bench_client.py`, the SDK's request building (options, headers, URL
merging, its httpx layer) took about two thirds of the client's CPU per call,
several times what the HTTP exchange itself costs; a process that feeds a fleet of
servers is bound by exactly that CPU. The `openai` package still does what it is
good at here: the Batch API (`clients.batch`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from grpo_dsl._version import __version__
from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    EndpointError,
    ModelConfig,
    TransientError,
)
from grpo_dsl.clients.wire import body

__all__ = ["HTTPAdapter", "endpoint_failure", "parse_completion"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})
MISSING_API_KEY = "no-api-key"


class HTTPAdapter:
    """Sends `ChatRequest`s for one model block to its endpoint's `/chat/completions`."""

    def __init__(self, model: ModelConfig) -> None:
        if not model.base_url or model.base_url == "local":
            raise EndpointError(
                f"model `{model.block}` has no base_url: set `base_url` in the model block (or the "
                "environment variable it names) to an OpenAI-compatible endpoint",
                model=model.block,
            )
        self.model = model
        self.url = model.base_url.rstrip("/") + "/chat/completions"
        self.headers = {
            "Authorization": f"Bearer {model.api_key or MISSING_API_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"grpo-dsl/{__version__}",
        }
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(1, self.model.concurrency), ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.model.timeout),
                headers=self.headers,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt at a chat completion."""
        try:
            async with self._pool().post(self.url, data=body(request, self.model.name)) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        if status >= 400:
            raise endpoint_failure(self.model, status, raw, headers)
        return parse_completion(raw)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def endpoint_failure(model: ModelConfig, status: int, raw: bytes, headers: Mapping[str, str]) -> Exception:
    """The error for an HTTP error answer: transient (429, 5xx, ...) or fatal, explained."""
    error = _error_body(raw)
    detail = str(error.get("message") or raw[:200].decode(errors="replace") or f"HTTP {status}")
    code = str(error["code"]) if error.get("code") is not None else None
    if (status in RETRYABLE_STATUSES or status >= 500) and code != "insufficient_quota":
        return TransientError(f"HTTP {status}: {detail}", retry_after=_retry_after(headers))
    return EndpointError(_explain(model, status, detail, code), model=model.block, status=status)


def _explain(model: ModelConfig, status: int, detail: str, code: str | None) -> str:
    where = f"model `{model.block}` ({model.name} at {model.base_url})"
    if status == 401:
        check = (
            f"check `api_key` of model `{model.block}` (from {model.api_key_source})"
            if model.api_key
            else f"model `{model.block}` has no api_key: set `api_key` (from {model.api_key_source})"
        )
    elif status == 403:
        check = f"the key may not use this model: check `api_key` and `name` of model `{model.block}`"
    elif status == 404:
        check = f"check `name` (the model id) and `base_url` (usually ending in /v1) of model `{model.block}`"
    elif code == "insufficient_quota":
        check = f"the account behind model `{model.block}` has no quota left"
    else:
        check = f"the endpoint rejected the request: check the settings of model `{model.block}` (e.g. `structured`)"
    return f"{where} answered HTTP {status}: {detail}; {check}"


def _error_body(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            return inner
    return {}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def parse_completion(raw: bytes | Mapping[str, Any]) -> ChatResponse:
    """The first choice and the usage of a chat completion (its bytes, or its parsed JSON)."""
    try:
        data = json.loads(raw) if isinstance(raw, bytes) else raw
        choice = data["choices"][0]
        message = choice["message"]
        usage = data.get("usage") or {}
        return ChatResponse(
            content=message.get("content"),
            tool_calls=tuple(message.get("tool_calls") or ()),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        shown = raw[:200] if isinstance(raw, bytes) else str(raw)[:200]
        raise TransientError(f"malformed response body ({type(exc).__name__}: {exc}): {shown!r}") from None
