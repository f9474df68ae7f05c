"""The language server (`grpo lsp`): the compiler's diagnostics, tables and plan in the editor.

`analysis` checks an open document as `grpo check` does; `features` answers what
the editor asks (hover, completion, definition, references, symbols, formatting,
code lenses); `positions` converts between spans and LSP positions; `server` is
the pygls server. It imports `language`, `plan` and `core`, and needs the `lsp`
extra (pygls).
"""

from grpo_dsl.lsp.server import make_server, serve

__all__ = ["make_server", "serve"]
