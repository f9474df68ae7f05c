"""Headless Chromium for the report tests: the browser, a DevTools client, a page visit."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.debian import apt_install

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass(frozen=True)
class Browser:
    websocket_url: str


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A headless Chromium with the DevTools protocol on a free loopback port."""
    if not CHROMIUM.exists():
        apt_install("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    log_path = profile.parent / "chromium.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(600):
            if process.poll() is not None:
                pytest.fail(f"chromium exited with status {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
            if port_file.exists() and len(port_file.read_text().splitlines()) == 2:
                break
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        else:
            pytest.fail(f"chromium did not open its DevTools port:\n{log_path.read_text(errors='replace')[-3000:]}")
        port, path = port_file.read_text().splitlines()
        yield Browser(f"ws://127.0.0.1:{port}{path}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DevTools:
    """A minimal DevTools protocol client: commands answered in order, events recorded."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse):
        self.socket = socket
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    async def _receive(self) -> dict[str, Any]:
        message = await self.socket.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"the DevTools connection ended: {message.type!r}")
        return dict(json.loads(message.data))

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.last_id += 1
        command: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        await self.socket.send_json(command)
        while True:
            message = await self._receive()
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return dict(message["result"])
            if "method" in message:
                self.events.append(message)

    async def wait_for_event(self, method: str, after: int) -> None:
        while not any(event["method"] == method for event in self.events[after:]):
            message = await self._receive()
            if "method" in message:
                self.events.append(message)


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    """Uncaught exceptions, console.error/assert calls and error-level log entries."""
    errors = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    return errors


@dataclass(frozen=True)
class PageVisit:
    errors: list[str]
    value: Any
    screenshot: bytes


async def visit(browser: Browser, page: Path, expression: str, width: int = 1280) -> PageVisit:
    """Load `page` in a new tab `width` pixels wide, evaluate `expression` (awaited when it
    is a promise), take a full-page screenshot."""
    async with asyncio.timeout(120):
        async with aiohttp.ClientSession() as http, http.ws_connect(browser.websocket_url, max_msg_size=0) as socket:
            devtools = DevTools(socket)
            target = (await devtools.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
            session = (await devtools.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                await devtools.send(f"{domain}.enable", session=session)
            metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
            await devtools.send("Emulation.setDeviceMetricsOverride", metrics, session)
            before = len(devtools.events)
            await devtools.send("Page.navigate", {"url": page.as_uri()}, session)
            await devtools.wait_for_event("Page.loadEventFired", before)
            evaluated = await devtools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session)
            layout = await devtools.send("Page.getLayoutMetrics", session=session)
            full_height = int(layout["cssContentSize"]["height"])
            await devtools.send("Emulation.setDeviceMetricsOverride", {**metrics, "height": full_height}, session)
            shot = await devtools.send("Page.captureScreenshot", {"format": "png"}, session)
            await devtools.send("Target.closeTarget", {"targetId": target})
            page_events = [event for event in devtools.events if event.get("sessionId") == session]
            return PageVisit(console_errors(page_events), evaluated["result"].get("value"), base64.b64decode(shot["data"]))


MEASURE = """
(() => {
  const count = (selector) => document.querySelectorAll(selector).length;
  const marks = (selector) => [...document.querySelectorAll(selector)].map((e) => {
    const box = e.getBoundingClientRect();
    return {value: Number(e.dataset.value), step: Number(e.dataset.step), x: box.x, y: box.y, width: box.width, height: box.height};
  });
  const svgs = [...document.querySelectorAll("svg")].map((s) => {
    const box = s.getBoundingClientRect();
    return {id: s.id, width: box.width, height: box.height};
  });
  return {
    svgs,
    reward_points: marks("#plot-reward circle.point"),
    reward_bands: count("#plot-reward polygon.band"),
    reward_lines: count("#plot-reward polyline.line"),
    group_bars: marks("#plot-groups rect.bar"),
    kept_bars: count("#plot-groups rect.kept"),
    op_bars: marks("#plot-ops rect.bar"),
    library_points: marks("#plot-library circle.point"),
    cost_bars: marks("#plot-cost rect.bar"),
    forest_estimates: [...document.querySelectorAll("svg[id^=plot-forest]")].map((s) => s.querySelectorAll("circle.estimate").length),
    difference_estimates: count("#plot-difference circle.estimate"),
    zero_lines: count("#plot-difference line.zero"),
    change_items: count("#library li.change"),
    images: count("img"),
    scripts: count("script"),
    sentences: [...document.querySelectorAll("#comparison-sentences li")].map((li) => li.textContent),
    hostile_text: [...document.querySelectorAll("#library .text")].some((p) => p.textContent.includes("<img src=x")),
    inserted_words: [...document.querySelectorAll("#library ins")].map((e) => e.textContent),
  };
})()
"""
