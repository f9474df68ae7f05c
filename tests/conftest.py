"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.endpoint import Endpoint


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
