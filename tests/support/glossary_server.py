"""An MCP server over stdio, written with the `mcp` package's server API: the glossary
of the agent world (`agent_world.py`). Its one tool, `lookup`, knows definitions that
appear nowhere else, so an answer that has them came through the tool."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from glossary import define

server = MCPServer("glossary")


@server.tool()
def lookup(term: str) -> str:
    """Look a term up in the glossary.

    Args:
        term: the term, as the question writes it
    """
    return define(term)


if __name__ == "__main__":
    server.run()
