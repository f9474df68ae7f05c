"""Read dataset files: `.jsonl` (one object a line), `.json` (a list of objects), `.csv`.

`read_columns` reads only what it needs to know the columns (the checks use it);
`read_rows` reads every row (the runtime uses it). A malformed file raises
`DatasetError` naming the file and, where known, the line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from grpo_dsl.core.errors import GrpoError

__all__ = ["FORMATS", "DatasetError", "dataset_format", "read_columns", "read_rows", "row_id"]

FORMATS: tuple[str, ...] = ("jsonl", "json", "csv")

_COLUMN_SAMPLE = 100


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


def _jsonl_rows(path: Path, text: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(path, f"invalid JSON at column {error.colno}: {error.msg}", number) from None
        if not isinstance(row, dict):
            raise DatasetError(path, f"expected a JSON object, found {_json_type(row)}", number)
        yield row


def _json_rows(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(path, f"invalid JSON at column {error.colno}: {error.msg}", error.lineno) from None
    if not isinstance(data, list):
        raise DatasetError(path, f"expected a JSON list of objects, found {_json_type(data)}")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DatasetError(path, f"item {index} of the list is {_json_type(row)}, not an object")
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


def _union(rows: Iterator[Mapping[str, Any]] | list[dict[str, Any]]) -> tuple[str, ...]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return tuple(columns)


def read_columns(path: str | Path) -> tuple[str, ...]:
    """The column names of a dataset file, in order of first appearance.

    For `.jsonl` and `.json` these are the keys of the first rows (up to 100); for
    `.csv` the header row. Raises `DatasetError` for a malformed or unreadable file.
    """
    path = Path(path)
    form = dataset_format(path)
    text = _text(path)
    if form == "csv":
        return tuple(_csv_reader(path, text).fieldnames or ())
    if form == "json":
        return _union(_json_rows(path, text)[:_COLUMN_SAMPLE])
    return _union(islice(_jsonl_rows(path, text), _COLUMN_SAMPLE))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a dataset file as a dict (CSV values stay strings).

    Raises `DatasetError` naming the file and line of the first malformed row.
    """
    path = Path(path)
    form = dataset_format(path)
    text = _text(path)
    if form == "csv":
        return list(_csv_rows(path, _csv_reader(path, text)))
    if form == "json":
        return _json_rows(path, text)
    return list(_jsonl_rows(path, text))


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
