"""Read dataset files: `.jsonl` (one object a line), `.json` (a list of objects), `.csv`.

`read_table` reads every row and the columns (the checks use it, so `grpo check`
rejects whatever a run would), `read_rows` the rows (the runtime uses it). A
malformed file raises `DatasetError` naming the file and, where known, the line:
invalid JSON or CSV, a value nested too deeply to read, a string with a lone
surrogate (`"\ud800"`, which is not text and cannot be written back as UTF-8).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_dsl.core.errors import GrpoError

__all__ = ["FORMATS", "DatasetError", "Table", "dataset_format", "read_rows", "read_table", "row_id"]

FORMATS: tuple[str, ...] = ("jsonl", "json", "csv")


class DatasetError(GrpoError):
    """A dataset file that cannot be read; `line` is 1-based, or None for the whole file."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = str(path)
        self.message = message
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def dataset_format(path: str | Path) -> str:
    """The format of a dataset file from its suffix (`jsonl`, `json`, `csv`).

    >>> dataset_format("data/math.jsonl")
    'jsonl'
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DatasetError(path, f"unsupported dataset format `.{suffix}`; use .jsonl, .json or .csv")
    return suffix


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except UnicodeDecodeError as error:
        raise DatasetError(path, f"not valid UTF-8 (byte offset {error.start})") from None
    except OSError as error:
        raise DatasetError(path, f"cannot read: {error.strerror or error}") from None


def _loads(path: Path, text: str, line: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(path, f"invalid JSON at column {error.colno}: {error.msg}", line or error.lineno) from None
    except RecursionError:
        raise DatasetError(path, "a value is nested too deeply to read", line) from None


def _lone_surrogate(value: Any) -> str | None:
    """The first string in `value` (keys included) holding a lone surrogate, or None."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if any("\ud800" <= character <= "\udfff" for character in item):
                return item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _text_only(path: Path, row: Any, line: int | None, where: str = "") -> None:
    found = _lone_surrogate(row)
    if found is not None:
        shown = found.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:60]
        raise DatasetError(
            path, f'{where}the string "{shown}" holds a lone surrogate (an escape from \\ud800 to \\udfff), which is not text', line
        )


def _jsonl_rows(path: Path, text: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = _loads(path, line, number)
        if not isinstance(row, dict):
            raise DatasetError(path, f"expected a JSON object, found {_json_type(row)}", number)
        _text_only(path, row, number)
        yield row


def _json_rows(path: Path, text: str) -> list[dict[str, Any]]:
    data = _loads(path, text, None)
    if not isinstance(data, list):
        raise DatasetError(path, f"expected a JSON list of objects, found {_json_type(data)}")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DatasetError(path, f"item {index} of the list is {_json_type(row)}, not an object")
        _text_only(path, row, None, f"item {index} of the list: ")
    return data


def _csv_reader(path: Path, text: str) -> csv.DictReader[str]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    if not reader.fieldnames:
        raise DatasetError(path, "the file has no header row", 1)
    duplicates = sorted({name for name in reader.fieldnames if reader.fieldnames.count(name) > 1})
    if duplicates:
        raise DatasetError(path, f"duplicate column `{duplicates[0]}` in the header", 1)
    return reader


def _csv_rows(path: Path, reader: csv.DictReader[str]) -> Iterator[dict[str, Any]]:
    try:
        for row in reader:
            if None in row or None in row.values():
                raise DatasetError(path, f"expected {len(reader.fieldnames or ())} columns", reader.line_num)
            yield dict(row)
    except csv.Error as error:
        raise DatasetError(path, str(error), reader.line_num) from None


def _json_type(value: object) -> str:
    names = {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


@dataclass(frozen=True, slots=True)
class Table:
    """A dataset file read whole: its columns, in order of first appearance (a CSV's
    header), and its rows."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


def read_table(path: str | Path) -> Table:
    """Every row of a dataset file and its columns (CSV values stay strings).

    Raises `DatasetError` naming the file and line of the first malformed row.
    """
    path = Path(path)
    form = dataset_format(path)
    text = _text(path)
    if form == "csv":
        reader = _csv_reader(path, text)
        return Table(tuple(reader.fieldnames or ()), list(_csv_rows(path, reader)))
    rows = _json_rows(path, text) if form == "json" else list(_jsonl_rows(path, text))
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return Table(tuple(columns), rows)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a dataset file as a dict (see `read_table`)."""
    return read_table(path).rows


def row_id(row: Mapping[str, Any]) -> str:
    """A stable id for a row: its `id` column, or a hash of its content.

    >>> row_id({"id": 7, "q": "x"})
    '7'
    >>> row_id({"q": "x"}) == row_id({"q": "x"})
    True
    """
    value = row.get("id")
    if value is not None and value != "":
        return str(value)
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
