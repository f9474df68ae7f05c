"""The `.grpo` language: source text in, a checked program or diagnostics out.

It owns the grammar's parser and the transformer that builds the AST while parsing
(`parser`, `transform`), the AST (`ast`), literals, the attribute table, the built-in
reward functions, diagnostics with their codes, the workspace of imported files, the
canonical formatter (`fmt`), the Python builders (`builders`) and the semantic
checks (`checks/`). It imports only `core`, and it is the only importer of `lark`.
"""
