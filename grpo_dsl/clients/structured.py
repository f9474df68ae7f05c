"""JSON replies validated against a schema, for the learner's calls.

`complete_json` sends the schema as the model's `structured` setting asks:
`json_schema` as an OpenAI structured-output `response_format`, `json_object` as
`{"type": "json_object", "schema": ...}` (which llama.cpp's server enforces), and
`text` not at all (the prompt describes the schema). The reply is parsed tolerantly
(code fences, prose around the JSON, comments, trailing commas), validated with
`jsonschema`, and on failure asked for once more with the problems appended; a
second failure raises `StructuredOutputError`. A reply that stopped at `max_tokens`
is a failure however it parses: a tolerant parser would close a cut-off object and
pass half a reply off as whole.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import json_repair
from jsonschema import Draft202012Validator

from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    LLMClient,
    StructuredOutputError,
)

__all__ = ["TRUNCATED", "complete_json", "parse_json_reply", "response_format"]

TRUNCATED = "the reply stopped at max_tokens before it was complete"

STRUCTURED_SETTINGS = ("json_schema", "json_object", "text")
MAX_REPORTED_ERRORS = 5
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def response_format(schema: Mapping[str, Any], structured: str) -> dict[str, Any] | None:
    """The `response_format` that sends `schema` under a model's `structured` setting."""
    if structured == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "response"))[:64]
        return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": False}}
    if structured == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    if structured == "text":
        return None
    raise ValueError(f"unknown structured setting {structured!r}; expected one of {', '.join(STRUCTURED_SETTINGS)}")


def parse_json_reply(text: str) -> Any:
    """The JSON value in a model's reply, tolerating fences, surrounding prose, comments and trailing commas.

    Raises ValueError when the reply holds no JSON object or array.
    """
    fenced = _FENCE.search(text)
    candidate = (fenced.group(1) if fenced else text).strip()
    try:
        value = json.loads(candidate)
    except ValueError:
        value = json_repair.loads(candidate) if any(bracket in candidate for bracket in "{[") else None
    if not isinstance(value, (dict, list)):
        raise ValueError("the reply contains no JSON object")
    return value


_validators: dict[str, Draft202012Validator] = {}


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    key = json.dumps(schema, sort_keys=True)
    validator = _validators.get(key)
    if validator is None:
        Draft202012Validator.check_schema(schema)
        validator = _validators[key] = Draft202012Validator(schema)
    return validator


def _problems(response: ChatResponse, validator: Draft202012Validator) -> tuple[dict[str, Any], tuple[str, ...]]:
    text = response.content
    if response.finish_reason == "length":
        return {}, (TRUNCATED,)
    if not text or not text.strip():
        return {}, ("the reply is empty",)
    try:
        value = parse_json_reply(text)
    except ValueError as exc:
        return {}, (f"the reply is not valid JSON: {exc}",)
    if not isinstance(value, dict):
        return {}, (f"the reply must be a JSON object, not {type(value).__name__}",)
    errors = sorted(validator.iter_errors(value), key=lambda error: list(error.absolute_path))
    messages = tuple(
        f"at {'/'.join(str(p) for p in error.absolute_path) or 'the top level'}: {error.message}"
        for error in errors[:MAX_REPORTED_ERRORS]
    )
    return value, messages


def _repair_message(errors: tuple[str, ...]) -> str:
    listed = "\n".join(f"- {error}" for error in errors)
    return (
        "Your reply could not be used:\n"
        f"{listed}\n"
        "Reply again with only the corrected JSON, matching the schema, and nothing else."
    )


async def complete_json(
    client: LLMClient,
    request: ChatRequest,
    schema: Mapping[str, Any],
    *,
    structured: str = "json_schema",
    on_event: Callable[[dict[str, Any]], None] | None = None,
    accept: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Ask for a JSON object matching `schema` and return it, repairing a bad reply once.

    `schema` is what the model is asked for; `accept` (default: `schema`) is what a
    reply must match to be returned, so a caller that checks items one by one can
    accept a reply with some bad items. The repair request repeats the conversation
    with the bad reply and the validation errors appended, under the sample key
    `<sample_key>/repair`. `on_event` is told of each repair. Raises
    `StructuredOutputError` (with the raw reply and the errors) when the repaired
    reply is still unusable.
    """
    validator = _validator(accept if accept is not None else schema)
    first = dataclasses.replace(request, response_format=response_format(schema, structured))
    answer = await client.complete(first)
    reply = answer.content
    value, errors = _problems(answer, validator)
    if not errors:
        return value
    if on_event is not None:
        on_event({"event": "structured_repair", "model": request.model, "stage": request.stage, "sample_key": request.sample_key, "errors": list(errors)})
    repair = dataclasses.replace(
        first,
        messages=(*first.messages, {"role": "assistant", "content": reply or ""}, {"role": "user", "content": _repair_message(errors)}),
        sample_key=f"{request.sample_key or ''}/repair",
    )
    second = await client.complete(repair)
    value, errors = _problems(second, validator)
    if not errors:
        return value
    raise StructuredOutputError(
        f"model `{request.model}` ({request.stage}) did not reply with JSON matching the schema after one repair: "
        + "; ".join(errors),
        raw=second.content or "",
        errors=errors,
    )

