"""A request on the wire: its JSON body, made once, and the cache key derived from it;
and an answer on the wire, a chat completion parsed once (`parse_completion`).

`body(request, model_id)` is the chat-completions body as canonical JSON bytes
(sorted keys, no spaces, numbers normalised). It is what the HTTP adapter posts,
what a batch file line carries, and what the cache key hashes, so each request is
serialised once however many layers look at it: the bytes are kept on the request
(`ChatRequest.wire`) for the model id they were made for.

`request_key` is the sha256 of the request's namespace (purpose and dataset split),
its `sample_key`, that body and, when the model id does not name the weights (the
embedded local model's file), what does. The stage within a purpose and the model
block's name are not part of it: renaming a block keeps its entries, changing its
model id or its weights does not.

`parse_completion` reads the first choice and the usage of a chat completion, as the
HTTP adapter receives it and as a batch job's output file carries it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from grpo_dsl.clients.protocol import ChatRequest, ChatResponse, TransientError, namespace

__all__ = ["body", "canonical_json", "parse_completion", "request_key"]


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON text: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain)


def body(request: ChatRequest, model_id: str) -> bytes:
    """The chat-completions body of `request` for `model_id`, as canonical JSON bytes."""
    made = request.wire
    if made is not None and made[0] == model_id:
        return made[1]
    fields: dict[str, Any] = {"model": model_id, "messages": request.messages}
    if request.temperature is not None:
        fields["temperature"] = float(request.temperature)
    if request.top_p is not None:
        fields["top_p"] = float(request.top_p)
    if request.max_tokens is not None:
        fields["max_tokens"] = request.max_tokens
    if request.seed is not None:
        fields["seed"] = request.seed
    if request.response_format is not None:
        fields["response_format"] = request.response_format
    if request.tools:
        fields["tools"] = request.tools
    encoded = canonical_json(fields).encode()
    # The request is frozen for its callers; the body is a memo of its own fields.
    object.__setattr__(request, "wire", (model_id, encoded))
    return encoded


def request_key(request: ChatRequest, model_id: str, weights: str | None = None) -> str:
    """The hex sha256 naming a request's cache entry (and its `custom_id` in a batch)."""
    digest = hashlib.sha256(namespace(request).encode())
    digest.update(b"\x1f")
    digest.update((request.sample_key or "").encode())
    digest.update(b"\x1f")
    digest.update(body(request, model_id))
    if weights is not None:
        digest.update(b"\x1f" + weights.encode())
    return digest.hexdigest()


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
