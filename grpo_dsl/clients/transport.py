"""The production `LLMClient`: chat completions posted to an OpenAI-compatible endpoint.

One `HTTPAdapter` per model block makes exactly one HTTP attempt per call (the
retry layer decides about more) on an `aiohttp` connection pool that never holds
more connections than the model's `concurrency`. It posts the request's canonical
body (`wire.body`, made once per request) and parses the reply once into a
`ChatResponse`, so a call costs one JSON encoding and one decoding. Failures
become `TransientError` (retry) or `EndpointError` (stop, naming the model block
and what to check), a connection failure named by its cause (refused, unknown
host, no answer). An attempt has a total deadline, the model's `timeout`, that
covers the whole answer: a body trickled a byte at a time trips it too.
`preflight` checks, before a run spends anything, that the endpoint answers,
accepts the key and serves the model.

The connection pool exists only inside `async with adapter:`, which opens it in the
running event loop and closes it on the way out, whatever ends the block. A call
made outside that block (a task that outlived its run) is refused; it never opens
a pool of its own that nobody would close.

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
import socket
import time
from collections.abc import Mapping
from types import TracebackType
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
from grpo_dsl.clients.wire import body, parse_completion

__all__ = ["HTTPAdapter", "connection_problem"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})
MISSING_API_KEY = "no-api-key"
PREFLIGHT_TIMEOUT_S = 15.0
"""The longest a preflight waits for an endpoint (less when the model's `timeout` is shorter)."""
NO_MODEL_LISTING = frozenset({404, 405, 501})
"""Answers of an endpoint without a `GET /models` route."""


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
        self.base_url = model.base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.headers = {
            "Authorization": f"Bearer {model.api_key or MISSING_API_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"grpo-dsl/{__version__}",
        }
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HTTPAdapter:
        """Open the connection pool, in the running event loop (an aiohttp session belongs to it)."""
        if self._session is not None:
            raise RuntimeError(f"the connections of model `{self.model.block}` are already open")
        # The session's own timeouts are off: each exchange has one total deadline (`_exchange`).
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(1, self.model.concurrency), ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(),
            headers=self.headers,
            skip_auto_headers=("Accept-Encoding",),
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Close the connection pool; from now on every call is refused."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise EndpointError(
                f"model `{self.model.block}`: its connections are closed (a call outside `async with` its client)",
                model=self.model.block,
            )
        return self._session

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt at a chat completion, answered in full within the model's `timeout`."""
        answer = await self._exchange("POST", self.url, body(request, self.model.name))
        return parse_completion(self._body(*answer))

    async def preflight(self) -> None:
        """Check that the endpoint answers, accepts the key and serves the model; raise `EndpointError` if not.

        It asks `GET /models` (free); an endpoint without that route gets a one-token
        chat completion instead. A listing that names other models but not this one
        is an error; an empty listing is taken on trust, and so is a passing failure
        (429, 5xx: the calls will retry it).
        """
        deadline = min(self.model.timeout, PREFLIGHT_TIMEOUT_S)
        listing = await self._reach("GET", self.base_url + "/models", None, deadline)
        if listing[0] in NO_MODEL_LISTING:
            ping = ChatRequest(model=self.model.block, messages=({"role": "user", "content": "ping"},), max_tokens=1)
            self._trusted(await self._reach("POST", self.url, body(ping, self.model.name), deadline))
            return
        served = _served_models(self._trusted(listing))
        model = self.model
        if served and model.name not in served:
            shown = ", ".join(f"`{name}`" for name in sorted(served)[:10])
            raise EndpointError(
                f"model `{model.block}`: `{model.name}` is not served at {model.base_url} (it serves {shown}); "
                f"check `name` of model `{model.block}`",
                model=model.block,
            )

    async def _exchange(
        self, method: str, url: str, data: bytes | None, deadline: float | None = None
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """One request and its whole answer (status, body, headers) within `deadline` seconds
        (the model's `timeout` by default); a failure to get it is a `TransientError`."""
        limit = self.model.timeout if deadline is None else deadline
        try:
            async with asyncio.timeout(limit):
                async with self._pool().request(method, url, data=data) as response:
                    return response.status, await response.read(), response.headers
        except TimeoutError:
            why = " (the model's timeout)" if limit == self.model.timeout else ""
            raise TransientError(f"no complete answer from {self.model.base_url} within {limit:g} s{why}") from None
        except aiohttp.ClientError as exc:
            raise TransientError(connection_problem(exc, self.model.base_url or "")) from None

    async def _reach(
        self, method: str, url: str, data: bytes | None, deadline: float
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """`_exchange` for the preflight: an endpoint that cannot be reached is an `EndpointError`."""
        try:
            return await self._exchange(method, url, data, deadline)
        except TransientError as exc:
            model = self.model
            raise EndpointError(
                f"model `{model.block}` ({model.name}): {exc}; check `base_url` of model `{model.block}` "
                "and that the server is running",
                model=model.block,
            ) from None

    def _body(self, status: int, raw: bytes, headers: Mapping[str, str]) -> bytes:
        """The body of a successful answer; an error answer raised as its failure."""
        if status >= 400:
            raise endpoint_failure(self.model, status, raw, headers)
        return raw

    def _trusted(self, answer: tuple[int, bytes, Mapping[str, str]]) -> bytes:
        """The body of a preflight's answer: a fatal error raised, a passing one (429, 5xx) read as empty."""
        try:
            return self._body(*answer)
        except TransientError:
            return b""


def endpoint_failure(model: ModelConfig, status: int, raw: bytes, headers: Mapping[str, str]) -> Exception:
    """The error for an HTTP error answer: transient (429, 5xx, ...) or fatal, explained."""
    error = _error_body(raw)
    detail = str(error.get("message") or raw[:200].decode(errors="replace") or f"HTTP {status}")
    code = str(error["code"]) if error.get("code") is not None else None
    if (status in RETRYABLE_STATUSES or status >= 500) and code != "insufficient_quota":
        return TransientError(f"HTTP {status}: {detail}", retry_after=_retry_after(headers), status=status)
    return EndpointError(_explain(model, status, detail, code), model=model.block, status=status)


def connection_problem(exc: BaseException, base_url: str) -> str:
    """What went wrong reaching `base_url`, from the operating system's error behind `exc`:
    "connection refused at URL", "cannot resolve the host of URL (...)", "cannot reach URL: ..."."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in chain:
        if isinstance(error, ConnectionRefusedError):
            return f"connection refused at {base_url}"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve the host of {base_url} ({error.strerror})"
    root = chain[-1]
    if isinstance(root, OSError) and root.strerror:
        return f"cannot reach {base_url}: {root.strerror}"
    return f"the connection to {base_url} failed: {root}"


def _served_models(listing: bytes) -> set[str]:
    try:
        data = json.loads(listing).get("data") or []
        return {str(item["id"]) for item in data if isinstance(item, dict) and "id" in item}
    except (ValueError, AttributeError, TypeError):
        return set()


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
