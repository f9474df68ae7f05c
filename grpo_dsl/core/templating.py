"""The one Jinja environment every template of the project is parsed and rendered in.

Sandboxed (templates come from programs and learned libraries, never trusted) and
strict (a missing variable is an error, not an empty string).
"""

from __future__ import annotations

import functools

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["compiled", "sandbox", "template_variables"]


def sandbox() -> SandboxedEnvironment:
    """The Jinja environment every template of the project renders in."""
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


@functools.cache
def _parser() -> SandboxedEnvironment:
    return sandbox()


@functools.lru_cache(maxsize=256)
def compiled(source: str) -> Template:
    """`source` compiled in the shared environment, once: rendering a task's prompt for
    every question of a run compiles it a single time."""
    return _parser().from_string(source)


def template_variables(text: str) -> set[str] | None:
    """The variables a template reads, or None when it does not parse."""
    try:
        return set(meta.find_undeclared_variables(_parser().parse(text)))
    except TemplateSyntaxError:
        return None
