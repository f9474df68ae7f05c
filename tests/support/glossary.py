"""The glossary of the agent world, shared by its MCP server and its Python tool."""

from __future__ import annotations

import hashlib


def define(term: str) -> str:
    """Look a term up in the glossary.

    Args:
        term: the term, as the question writes it
    """
    if not term.startswith("zorp"):
        return f"no entry for {term!r}"
    return "def-" + hashlib.sha256(term.encode()).hexdigest()[:10]
