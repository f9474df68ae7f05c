"""The text of literals: strings and numbers as written in source, both ways.

`decode_string` turns a string token into its value; `encode_string` and
`encode_long_string` write a value back so that decoding gives it unchanged.
The builder and the formatter share these, so reading and writing agree.
"""

from __future__ import annotations

import math
import re
import textwrap

from grpo_dsl.core.errors import GrpoError

__all__ = [
    "LANGUAGE_VERSIONS",
    "RESERVED_WORDS",
    "LiteralError",
    "decode_string",
    "encode_string",
    "encode_long_string",
    "decode_number",
    "encode_number",
    "is_name",
]

LANGUAGE_VERSIONS = (1,)
RESERVED_WORDS = frozenset({"and", "or", "not", "if", "then", "else", "true", "false", "null"})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPE = re.compile(r'\\(?:u\{(?P<code>[^}"\s]*)(?P<close>\}?)|(?P<char>[\s\S]))')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_LONG_QUOTES = '"""'


class LiteralError(GrpoError, ValueError):
    """A literal that cannot be read; `start`/`end` are offsets into its raw text."""

    def __init__(self, message: str, start: int, end: int):
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end


def is_name(text: str) -> bool:
    """True if `text` can be written as a bare name (an identifier, not a reserved word)."""
    return bool(_IDENTIFIER.match(text)) and text not in RESERVED_WORDS


def _unescape(body: str, offset: int) -> str:
    def replace(match: re.Match[str]) -> str:
        char = match["char"]
        if char is not None:
            return _SIMPLE_ESCAPES.get(char, match[0])
        code, start, end = match["code"], offset + match.start(), offset + match.end()
        if not match["close"]:
            raise LiteralError("unterminated `\\u{...}` escape: expected `}`", start, end)
        if not re.fullmatch(r"[0-9A-Fa-f]{1,6}", code):
            raise LiteralError(f"invalid `\\u{{...}}` escape: `{code}` is not 1 to 6 hex digits", start, end)
        point = int(code, 16)
        if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
            raise LiteralError(f"invalid `\\u{{...}}` escape: U+{point:X} is not a character", start, end)
        return chr(point)

    return _ESCAPE.sub(replace, body)


def _dedent_long(body: str) -> str:
    lines = body.replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and not lines[0].strip():
        lines = lines[1:]
    if len(lines) > 1 and not lines[-1].strip():
        lines = lines[:-1]
    return textwrap.dedent("\n".join(lines))


def decode_string(raw: str) -> str:
    """The value of a string token: `"..."` with escapes, or `\"\"\"...\"\"\"` also dedented.

    Raises `LiteralError` for a malformed `\\u{...}` escape.
    """
    if raw.startswith(_LONG_QUOTES) and len(raw) >= 6:
        body = raw[3:-3]
        _unescape(body, 3)
        return _unescape(_dedent_long(body), 3)
    return _unescape(raw[1:-1], 1)


def _escape_char(value: str, index: int, *, long: bool) -> str:
    char = value[index]
    following = value[index + 1 : index + 3]
    if char == "\\":
        keeps_meaning = following[:1] not in ('"', "\\", "n", "t", "") and not following.startswith("u{")
        return "\\" if keeps_meaning and following[:1].isprintable() else "\\\\"
    if char == '"':
        return '\\"' if not long or following == '""' else '"'
    if char == "\n":
        return "\n" if long else "\\n"
    if char == "\t":
        return "\\t"
    if not char.isprintable():
        return f"\\u{{{ord(char):x}}}"
    return char


def encode_string(value: str) -> str:
    """`value` as a one-line `"..."` literal."""
    return '"' + "".join(_escape_char(value, i, long=False) for i in range(len(value))) + '"'


def encode_long_string(value: str, indent: str) -> str | None:
    """`value` as a `\"\"\"` block whose lines are indented by `indent` (the closing
    quotes too), or None if that form would not read back as exactly `value`."""
    body = "".join(_escape_char(value, i, long=True) for i in range(len(value)))
    lines = [indent + line if line else "" for line in body.split("\n")]
    text = _LONG_QUOTES + "\n" + "\n".join(lines) + "\n" + indent + _LONG_QUOTES
    try:
        return text if decode_string(text) == value else None
    except LiteralError:
        return None


def decode_number(raw: str) -> int | float:
    """The value of a number token (`1_000`, `0.7`, `1e-6`); integers stay `int`."""
    try:
        value: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        raise LiteralError(f"number `{raw[:20]}...` has too many digits", 0, len(raw)) from None
    if isinstance(value, float) and math.isinf(value):
        raise LiteralError(f"number `{raw}` is too large", 0, len(raw))
    return value


def encode_number(value: int | float) -> str:
    """`value` as a number literal; a negative number is written with its `-`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written in a .grpo program")
    return repr(value)
