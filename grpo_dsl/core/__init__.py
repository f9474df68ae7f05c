"""The ground floor: what every other layer needs and nothing grpo-specific above it.

It owns the `GrpoError` root of every project exception (`errors`), atomic files,
JSON and hashing (`files`), the files that ship with the package (`resources`),
reading datasets (`datasets`) and resolving `env(...)` values (`env`). It imports
only the standard library.
"""
