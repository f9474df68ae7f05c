"""An OpenAI-compatible chat endpoint on 127.0.0.1, run in its own process.

The server answers `POST /v1/chat/completions` from a script, an importable
function `module:function` called as `(request_json, request_number)` that returns
the reply text, or a dict that becomes the assistant message (an optional
`finish_reason` key sets the finish reason), or a dict with `error_status` (and
optionally `retry_after`, `message`, `code`) to answer with that HTTP error. Without
a script it echoes the last user message. It fills `usage` with whitespace token
counts, or, with the setting `chars_per_token` (in `faults`), with characters / that
many, rounded up per message.

Script modules are imported with `tests/` and the repository root on `sys.path`,
so they are named from `tests/`: `support.worlds:date_world`,
`clients.test_client:rate_limited_once`.

Faults are injected with configured rates drawn from a seeded generator: 429 with
`Retry-After`, 500, dropped connections (the socket is closed before any answer),
malformed JSON bodies, and a latency for every request; `trickle_ms` sends every
answer's body one byte at a time, that many milliseconds apart. With `api_key` set,
other keys get 401; with `models` set, other model names get 404.

`GET /v1/models` lists `models` (an empty list when none are set), as OpenAI's
model listing does, and checks the key; it is not counted in the statistics. The
fault `no_model_list` (non-zero) makes it answer 404, as endpoints without the route do.

`GET /stats` returns the counts (total, per outcome, per model, peak in flight, the
last request bodies with their arrival time); `POST /reset` clears them;
`POST /configure` replaces the configuration and clears them. `GET /ledger` lists
every answered request: its body's sha256, when it arrived and when it was answered.

From tests and benchmarks use `Endpoint` (or the `running_endpoint` context
manager), which starts `python tests/support/endpoint.py` and talks to it over HTTP; the
server exits when its parent closes its standard input (or dies).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import importlib
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["Endpoint", "running_endpoint", "echo"]

TESTS_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = TESTS_DIR.parent
RECENT_REQUESTS = 200
DEFAULT_FAULTS: dict[str, float] = {
    "rate_429": 0.0,
    "rate_500": 0.0,
    "rate_drop": 0.0,
    "rate_malformed": 0.0,
    "latency_ms": 0.0,
    "retry_after": 0.05,
    "trickle_ms": 0.0,
    "no_model_list": 0.0,
    "chars_per_token": 0.0,
    "seed": 0,
}

Script = Callable[[Mapping[str, Any], int], "str | Mapping[str, Any]"]


def echo(request: Mapping[str, Any], number: int) -> str:
    """The default script: repeat the last user message."""
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    return f"echo: {users[-1].get('content') if users else ''}"


def _tokens(value: Any, chars_per_token: float) -> int:
    if not isinstance(value, str):
        return 0
    return math.ceil(len(value) / chars_per_token) if chars_per_token else len(value.split())


def _load_script(reference: str | None) -> Script:
    if not reference:
        return echo
    module_name, _, function = reference.partition(":")
    script: Script = getattr(importlib.import_module(module_name), function)
    return script


# ---------------------------------------------------------------- the server process


class _Server:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.configure(config)

    def configure(self, config: Mapping[str, Any]) -> None:
        self.faults = {**DEFAULT_FAULTS, **(config.get("faults") or {})}
        self.script = _load_script(config.get("script"))
        self.api_key: str | None = config.get("api_key")
        self.models: list[str] | None = config.get("models")
        self.reset()

    def reset(self) -> None:
        self.random = random.Random(self.faults["seed"])
        self.total = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.models_seen: collections.Counter[str] = collections.Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_REQUESTS)
        self.ledger: list[dict[str, Any]] = []
        self.cpu_at_reset = time.process_time()

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "outcomes": dict(self.outcomes),
            "models": dict(self.models_seen),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "cpu_seconds": time.process_time() - self.cpu_at_reset,
            "requests": list(self.recent),
        }

    def draw_fault(self) -> str | None:
        draw = self.random.random()
        for fault in ("429", "500", "drop", "malformed"):
            draw -= self.faults[f"rate_{fault}"]
            if draw < 0:
                return fault
        return None


def _error(status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _completion(body: Mapping[str, Any], number: int, reply: str | Mapping[str, Any], chars_per_token: float) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply} if isinstance(reply, str) else {"role": "assistant", **reply}
    finish_reason = message.pop("finish_reason", "tool_calls" if message.get("tool_calls") else "stop")
    prompt_tokens = sum(_tokens(m.get("content"), chars_per_token) for m in body.get("messages", []))
    completion_tokens = _tokens(message.get("content"), chars_per_token) + sum(
        _tokens(call.get("function", {}).get("arguments"), chars_per_token) for call in message.get("tool_calls") or []
    )
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _application(server: _Server) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        server.total += 1
        number = server.total
        try:
            body = await request.json()
        except json.JSONDecodeError:
            server.outcomes["400"] += 1
            return _error(400, "the request body is not JSON", "invalid_json")
        model = str(body.get("model", ""))
        server.models_seen[model] += 1
        received_at = time.time()
        server.recent.append({"number": number, "received_at": time.monotonic(), "body": body})
        if server.api_key is not None and request.headers.get("Authorization") != f"Bearer {server.api_key}":
            server.outcomes["401"] += 1
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if server.models is not None and model not in server.models:
            server.outcomes["404"] += 1
            return _error(404, f"The model `{model}` does not exist.", "model_not_found")
        fault = server.draw_fault()
        server.in_flight += 1
        server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
        try:
            if server.faults["latency_ms"]:
                await asyncio.sleep(server.faults["latency_ms"] / 1000)
            if fault == "429":
                server.outcomes["429"] += 1
                retry_after = server.faults["retry_after"]
                header = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
                return _error(429, "Rate limit reached.", "rate_limit_exceeded", {"Retry-After": header})
            if fault == "500":
                server.outcomes["500"] += 1
                return _error(500, "The server had an error.", "server_error")
            if fault == "drop":
                server.outcomes["dropped"] += 1
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            if fault == "malformed":
                server.outcomes["malformed"] += 1
                return web.Response(body=b'{"id": "chatcmpl-broken", "choices": [{"mess', content_type="application/json")
            reply = server.script(body, number)
            if isinstance(reply, Mapping) and "error_status" in reply:
                status = int(reply["error_status"])
                server.outcomes[str(status)] += 1
                headers = {"Retry-After": str(reply["retry_after"])} if "retry_after" in reply else None
                return _error(status, str(reply.get("message", "scripted error")), str(reply.get("code", "scripted")), headers)
            server.outcomes["ok"] += 1
            response = web.json_response(_completion(body, number, reply, server.faults["chars_per_token"]))
            if server.faults["trickle_ms"]:
                return await _trickle(request, response, server.faults["trickle_ms"] / 1000)
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            server.ledger.append({"sha256": digest, "received_at": received_at, "answered_at": time.time()})
            return response
        finally:
            server.in_flight -= 1

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(server.stats())

    async def models(request: web.Request) -> web.Response:
        if server.faults["no_model_list"]:
            return _error(404, "Not found.", "not_found")
        if server.api_key is not None and request.headers.get("Authorization") != f"Bearer {server.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        listed = [{"id": name, "object": "model", "owned_by": "test"} for name in server.models or []]
        return web.json_response({"object": "list", "data": listed})

    async def ledger(request: web.Request) -> web.Response:
        return web.json_response(server.ledger)

    async def reset(request: web.Request) -> web.Response:
        server.reset()
        return web.json_response({"ok": True})

    async def configure(request: web.Request) -> web.Response:
        try:
            server.configure(await request.json())
        except Exception as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_get("/ledger", ledger)
    app.router.add_post("/reset", reset)
    app.router.add_post("/configure", configure)
    return app


async def _trickle(request: web.Request, response: web.Response, pause: float) -> web.StreamResponse:
    """Send `response`'s body one byte at a time, `pause` seconds apart."""
    body = bytes(response.body) if isinstance(response.body, (bytes, bytearray)) else b""
    stream = web.StreamResponse(status=response.status, headers={"Content-Type": "application/json"})
    stream.content_length = len(body)
    await stream.prepare(request)
    for index in range(len(body)):
        await stream.write(body[index : index + 1])
        await asyncio.sleep(pause)
    await stream.write_eof()
    return stream


async def _serve(port: int, config: Mapping[str, Any]) -> None:
    runner = web.AppRunner(_application(_Server(config)), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _exit_with_parent() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    """Run the server: `python tests/support/endpoint.py --port 0 --config '{...}'`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="JSON: script, faults, api_key, models")
    args = parser.parse_args()
    sys.path[:0] = [str(TESTS_DIR), str(PROJECT_DIR)]
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, json.loads(args.config)))


# ---------------------------------------------------------------- the controlling side


class Endpoint:
    """A running endpoint process: its `base_url`, its counters and its configuration."""

    def __init__(
        self,
        *,
        script: str | None = None,
        faults: Mapping[str, float] | None = None,
        api_key: str | None = None,
        models: list[str] | None = None,
        port: int = 0,
    ) -> None:
        self._port = port
        self._process: subprocess.Popen[str] | None = None
        self._start(self._config(script, faults, api_key, models))

    @staticmethod
    def _config(
        script: str | None, faults: Mapping[str, float] | None, api_key: str | None, models: list[str] | None
    ) -> dict[str, Any]:
        return {"script": script, "faults": dict(faults or {}), "api_key": api_key, "models": models}

    def _start(self, config: Mapping[str, Any]) -> None:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", str(self._port), "--config", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_DIR,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening "):
            process.kill()
            process.wait()
            raise RuntimeError(f"the test endpoint did not start (exit code {process.poll()})")
        self._port = int(line.split()[1])
        self._process = process

    @property
    def pid(self) -> int:
        """The server process id."""
        assert self._process is not None
        return self._process.pid

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ending in `/v1`."""
        return f"http://127.0.0.1:{self._port}/v1"

    def _call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self._port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """Total requests, `outcomes` (ok, 429, 500, dropped, malformed, 401, 404), per-model
        counts, `peak_in_flight`, the server's `cpu_seconds` since the last reset, and the
        recent `requests` (number, received_at, body)."""
        return dict(self._call("GET", "/stats"))

    def ledger(self) -> list[dict[str, Any]]:
        """Every answered request since the last reset: the sha256 of its body, when it
        arrived and when its answer was sent (wall-clock seconds)."""
        return list(self._call("GET", "/ledger"))

    def reset(self) -> None:
        """Clear the counters and restart the fault generator from its seed."""
        self._call("POST", "/reset", {})

    def configure(
        self,
        *,
        script: str | None = None,
        faults: Mapping[str, float] | None = None,
        api_key: str | None = None,
        models: list[str] | None = None,
    ) -> None:
        """Replace the script and fault configuration in the running process (and reset)."""
        self._call("POST", "/configure", self._config(script, faults, api_key, models))

    def restart(
        self,
        *,
        script: str | None = None,
        faults: Mapping[str, float] | None = None,
        api_key: str | None = None,
        models: list[str] | None = None,
    ) -> None:
        """Stop the process and start a new one on the same port with this configuration."""
        self.stop()
        self._start(self._config(script, faults, api_key, models))

    def stop(self) -> None:
        """Terminate the server process."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None


@contextlib.contextmanager
def running_endpoint(
    *,
    script: str | None = None,
    faults: Mapping[str, float] | None = None,
    api_key: str | None = None,
    models: list[str] | None = None,
) -> Iterator[Endpoint]:
    """Start an endpoint process for the duration of a `with` block."""
    endpoint = Endpoint(script=script, faults=faults, api_key=api_key, models=models)
    try:
        yield endpoint
    finally:
        endpoint.stop()


if __name__ == "__main__":
    main()
