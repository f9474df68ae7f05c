"""The production `LLMClient`: one OpenAI-compatible endpoint through `openai.AsyncOpenAI`.

The adapter makes exactly one HTTP attempt per call (the SDK's own retries are off;
the retry layer decides about more) over the SDK's aiohttp transport, whose pool
never holds more connections than the concurrency layer lets calls through. It
posts the body as a plain dict, parses the reply once without building the SDK's
typed objects, and names each attempt itself (the SDK would draw a random UUID per
call for an idempotency key that OpenAI-compatible servers ignore). Failures become
`TransientError` (retry) or `EndpointError` (stop, naming the model block and what
to check). An attempt has a total deadline, the model's `timeout`: the SDK's own
timeout bounds each read, so a body trickled a byte at a time would never trip it.
`preflight` checks, before a run spends anything, that the endpoint answers and
serves the model.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from collections.abc import Mapping
from typing import Any

import openai

from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    EndpointError,
    ModelConfig,
    TransientError,
)

__all__ = ["OpenAIAdapter"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})
MISSING_API_KEY = "no-api-key"
PREFLIGHT_TIMEOUT_S = 15.0
"""The longest a preflight waits for an endpoint (less when the model's `timeout` is shorter)."""


class OpenAIAdapter:
    """Sends `ChatRequest`s for one model block to its endpoint."""

    def __init__(self, model: ModelConfig) -> None:
        if not model.base_url or model.base_url == "local":
            raise EndpointError(
                f"model `{model.block}` has no base_url: set `base_url` in the model block (or the "
                "environment variable it names) to an OpenAI-compatible endpoint",
                model=model.block,
            )
        self.model = model
        self._attempts = 0
        self._client = openai.AsyncOpenAI(
            base_url=model.base_url,
            api_key=model.api_key or MISSING_API_KEY,
            timeout=model.timeout,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=model.timeout),
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt at a chat completion, answered in full within the model's `timeout`."""
        return _parse(await self._post(self._body(request), self.model.timeout))

    async def _post(self, body: Mapping[str, Any], deadline: float) -> bytes:
        try:
            async with asyncio.timeout(deadline):
                raw: bytes = await self._client.post(
                    "/chat/completions", body=body, cast_to=bytes, options={"idempotency_key": self._next_attempt_id()}
                )
                return raw
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIConnectionError as exc:
            raise TransientError(connection_problem(exc, self.model.base_url or "", deadline)) from None
        except TimeoutError:
            raise TransientError(f"no complete answer from {self.model.base_url} within {deadline:g} s (the model's timeout)") from None

    async def preflight(self) -> None:
        """Check that the endpoint answers, accepts the key and serves the model; raise `EndpointError` if not.

        It asks `GET /models` (free); an endpoint without that route gets a one-token
        chat completion instead. A listing that names other models but not this one
        is an error; an empty listing is taken on trust.
        """
        deadline = min(self.model.timeout, PREFLIGHT_TIMEOUT_S)
        model = self.model
        try:
            async with asyncio.timeout(deadline):
                listing = await self._client.get("/models", cast_to=bytes)
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                await self._ping(deadline)
                return
            error = self._status_error(exc)
            if isinstance(error, EndpointError):
                raise error from None
            return
        except (openai.APIConnectionError, TimeoutError) as exc:
            raise self._unreachable(connection_problem(exc, model.base_url or "", deadline)) from None
        served = _served_models(listing)
        if served and model.name not in served:
            shown = ", ".join(f"`{name}`" for name in sorted(served)[:10])
            raise EndpointError(
                f"model `{model.block}`: `{model.name}` is not served at {model.base_url} (it serves {shown}); "
                f"check `name` of model `{model.block}`",
                model=model.block,
            )

    async def _ping(self, deadline: float) -> None:
        """A one-token completion, for an endpoint that does not list its models."""
        body = {"model": self.model.name, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        try:
            await self._post(body, deadline)
        except TransientError as exc:
            if exc.status is None:
                raise self._unreachable(str(exc)) from None

    def _unreachable(self, problem: str) -> EndpointError:
        model = self.model
        return EndpointError(
            f"model `{model.block}` ({model.name}): {problem}; check `base_url` of model `{model.block}` "
            "and that the server is running",
            model=model.block,
        )

    def _next_attempt_id(self) -> str:
        self._attempts += 1
        return f"grpo-{self.model.block}-{self._attempts}"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.close()

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model.name, "messages": [dict(m) for m in request.messages]}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.seed is not None:
            body["seed"] = request.seed
        if request.response_format is not None:
            body["response_format"] = dict(request.response_format)
        if request.tools:
            body["tools"] = [dict(t) for t in request.tools]
        return body

    def _status_error(self, exc: openai.APIStatusError) -> Exception:
        status = exc.status_code
        detail = _error_message(exc)
        code = _error_code(exc)
        if (status in RETRYABLE_STATUSES or status >= 500) and code != "insufficient_quota":
            return TransientError(f"HTTP {status}: {detail}", retry_after=_retry_after(exc.response.headers), status=status)
        return EndpointError(self._explain(status, detail, code), model=self.model.block, status=status)

    def _explain(self, status: int, detail: str, code: str | None) -> str:
        model = self.model
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


def connection_problem(exc: BaseException, base_url: str, deadline: float) -> str:
    """What went wrong reaching `base_url`, from the operating system's error behind `exc`:
    "connection refused at URL", "cannot resolve the host of URL", "no answer from URL within N s"."""
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
    if isinstance(root, OSError) and not isinstance(root, TimeoutError) and root.strerror:
        return f"cannot reach {base_url}: {root.strerror}"
    if isinstance(root, (TimeoutError, openai.APITimeoutError)):
        return f"no answer from {base_url} within {deadline:g} s"
    return f"the connection to {base_url} failed: {root}"


def _served_models(listing: bytes) -> set[str]:
    try:
        data = json.loads(listing).get("data") or []
        return {str(item["id"]) for item in data if isinstance(item, dict) and "id" in item}
    except (ValueError, AttributeError, TypeError):
        return set()


def _error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner
    return {}


def _error_message(exc: openai.APIStatusError) -> str:
    return str(_error_body(exc).get("message") or exc.message)


def _error_code(exc: openai.APIStatusError) -> str | None:
    code = _error_body(exc).get("code")
    return str(code) if code is not None else None


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


def _parse(raw: bytes) -> ChatResponse:
    try:
        data = json.loads(raw)
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
        raise TransientError(f"malformed response body ({type(exc).__name__}: {exc}): {raw[:200]!r}") from None
