"""The provider Batch API through the `openai` package: files in, a job, files out.

`OpenAIBatchAPI` is the only code that speaks to `/v1/files` and `/v1/batches`:
`upload` a JSON-lines file (`files.create(purpose="batch")`), `create` a job from it
(`batches.create`), `find` the job made from a file (`batches.list`), `status` of a
job (`batches.retrieve`) and `download` a result file (`files.content`). Failures
become `TransientError` (a dropped connection, 429, 5xx: worth asking again) or
`BatchRejected` (any other refusal).
"""

from __future__ import annotations

from typing import Final

import openai

from grpo_dsl.clients.batch import BatchRejected, BatchStatus
from grpo_dsl.clients.protocol import ModelConfig, TransientError

__all__ = ["OpenAIBatchAPI"]

CHAT_ENDPOINT: Final = "/v1/chat/completions"
LIST_PAGE = 100


class OpenAIBatchAPI:
    """The Batch API of one model block's endpoint."""

    def __init__(self, model: ModelConfig) -> None:
        self._client = openai.AsyncOpenAI(
            base_url=model.base_url,
            api_key=model.api_key or "no-api-key",
            timeout=model.timeout,
            max_retries=0,
        )

    async def upload(self, name: str, data: bytes) -> str:
        """Upload a batch input file; its id."""
        try:
            created = await self._client.files.create(file=(name, data, "application/jsonl"), purpose="batch")
        except openai.OpenAIError as exc:
            raise _failure(exc) from None
        return created.id

    async def create(self, file_id: str, metadata: dict[str, str]) -> str:
        """Start a job on an uploaded file; its id."""
        try:
            batch = await self._client.batches.create(
                input_file_id=file_id, endpoint=CHAT_ENDPOINT, completion_window="24h", metadata=metadata
            )
        except openai.OpenAIError as exc:
            raise _failure(exc) from None
        return batch.id

    async def find(self, file_id: str) -> str | None:
        """The id of the job made from `file_id`, if there is one."""
        try:
            async for batch in self._client.batches.list(limit=LIST_PAGE):
                if batch.input_file_id == file_id:
                    return batch.id
        except openai.OpenAIError as exc:
            raise _failure(exc) from None
        return None

    async def status(self, batch_id: str) -> BatchStatus:
        """Where a job stands, with its result files once it has them."""
        try:
            batch = await self._client.batches.retrieve(batch_id)
        except openai.OpenAIError as exc:
            raise _failure(exc) from None
        return BatchStatus(batch.status, batch.output_file_id, batch.error_file_id)

    async def download(self, file_id: str) -> bytes:
        """The content of a result file."""
        try:
            return (await self._client.files.content(file_id)).content
        except openai.OpenAIError as exc:
            raise _failure(exc) from None

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.close()


def _failure(exc: openai.OpenAIError) -> Exception:
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            return TransientError(f"HTTP {exc.status_code}: {exc.message}")
        return BatchRejected(f"HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIConnectionError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return BatchRejected(f"{type(exc).__name__}: {exc}")
