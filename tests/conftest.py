"""Shared fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.debian import require_bubblewrap
from support.endpoint import Endpoint

from grpo_dsl.clients.local import CACHE_ENV, DEFAULT_MODEL, LocalModelError, cache_dir, model_path
from grpo_dsl.rollout.sandbox import bubblewrap_problem


def _fresh_cache(folder: Path, model: Path) -> Path:
    """An empty shared response cache folder; the local model file is linked in when the user's cache has it."""
    folder.mkdir(parents=True, exist_ok=True)
    if model.is_file():
        (folder / model.name).symlink_to(model)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _user_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test reads or writes the user's response cache: the session's tests get their own
    folder (tests that run the local model first assemble it into the user's cache, as before)."""
    if any(item.get_closest_marker("local_model") for item in request.session.items):
        with contextlib.suppress(LocalModelError):  # the local-model tests report it themselves
            model_path()
    model = cache_dir() / DEFAULT_MODEL.filename
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(_fresh_cache(tmp_path_factory.mktemp("grpo-cache"), model)))
        yield model


@pytest.fixture(autouse=True)
def _own_cache(_user_model: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test starts with an empty shared response cache (`$GRPO_CACHE_DIR`)."""
    folder = _fresh_cache(tmp_path_factory.mktemp("grpo-cache"), _user_model)
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


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
