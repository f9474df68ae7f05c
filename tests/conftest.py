"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.debian import require_bubblewrap
from support.endpoint import Endpoint

from grpo_dsl.rollout.sandbox import bubblewrap_problem


@pytest.fixture(scope="session")
def _endpoint_process() -> Iterator[Endpoint]:
    endpoint = Endpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def endpoint(_endpoint_process: Endpoint) -> Endpoint:
    """The test OpenAI-compatible endpoint (tests/support/endpoint.py), echoing, without faults, counters at zero.

    Use `.configure(script=..., faults=..., api_key=..., models=...)` to change it for
    one test and `.restart(...)` to replace its process; `.base_url`, `.stats()`, `.reset()`.
    """
    _endpoint_process.configure()
    return _endpoint_process


@pytest.fixture(scope="session")
def bubblewrap() -> None:
    """The python tool's sandbox can run: `bubblewrap` is installed (with apt-get when
    missing) and starts a sandbox here (tests/support/debian.py)."""
    require_bubblewrap()


@pytest.fixture
def no_bubblewrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A machine without `bwrap`: a PATH that does not have it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    bubblewrap_problem.cache_clear()
    yield
    bubblewrap_problem.cache_clear()
