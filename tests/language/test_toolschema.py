"""The JSON schema of a Python tool, read from its source without importing it."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from grpo_dsl.language.toolschema import ToolSchemaError, function_schema

SOURCE = '''
import sys
sys.exit("importing this file is an error")

from typing import Literal, Optional


def search(
    query: str,
    limit: int = 5,
    *,
    sort: Literal["new", "old"] = "new",
    tags: list[str] | None = None,
    weights: "dict[str, float]" = {},
    near: Optional[float] = None,
    anything=None,
    flag: bool = False,
) -> list[str]:
    """Search the notes by words.

    Longer text that is not the description.

    Args:
        query: the words to look for
        limit (int): at most this many notes
        tags: only notes with all of these tags
    Returns:
        the notes
    """
'''


def test_every_parameter_becomes_a_typed_described_property(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text(SOURCE)
    schema = function_schema(tmp_path / "tools.py", "search")
    assert schema["description"] == "Search the notes by words."
    parameters = schema["parameters"]
    jsonschema.Draft202012Validator.check_schema(parameters)
    assert parameters["required"] == ["query"]
    assert parameters["additionalProperties"] is False
    properties = parameters["properties"]
    assert properties["query"] == {"type": "string", "description": "the words to look for"}
    assert properties["limit"] == {"type": "integer", "description": "at most this many notes"}
    assert properties["sort"] == {"enum": ["new", "old"]}
    assert properties["tags"] == {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "description": "only notes with all of these tags"}
    assert properties["weights"] == {"type": "object"}
    assert properties["near"] == {"anyOf": [{"type": "number"}, {"type": "null"}]}
    assert properties["anything"] == {} and properties["flag"] == {"type": "boolean"}
    validator = jsonschema.Draft202012Validator(parameters)
    assert validator.is_valid({"query": "x", "tags": None, "sort": "old"})
    assert not validator.is_valid({"query": "x", "sort": "newest"})
    assert not validator.is_valid({"limit": 3})


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def other(): pass\n", "has no top-level function `search`"),
        ("class A:\n    def search(self, q: str): pass\n", "has no top-level function `search`"),
        ("def search(*words: str): pass\n", "takes `*args`, `**kwargs` or positional-only parameters"),
        ("def search(q, /): pass\n", "takes `*args`, `**kwargs` or positional-only parameters"),
        ("def search(q: str\n", "cannot read `tools.py`"),
    ],
)
def test_a_function_that_cannot_be_offered_is_refused(tmp_path: Path, source: str, problem: str) -> None:
    (tmp_path / "tools.py").write_text(source)
    with pytest.raises(ToolSchemaError, match=problem.replace("*", r"\*").replace("(", r"\(")):
        function_schema(tmp_path / "tools.py", "search")
