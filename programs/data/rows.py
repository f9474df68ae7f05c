"""Writing generated rows, shared by the data generators in this folder."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]], prefix: str) -> None:
    """Write `rows` as JSON lines, each with a stable `id` of `prefix` and its 1-based number."""
    with path.open("w", encoding="utf-8") as out:
        for index, row in enumerate(rows, start=1):
            out.write(json.dumps({"id": f"{prefix}{index:03d}", **row}, ensure_ascii=False) + "\n")
