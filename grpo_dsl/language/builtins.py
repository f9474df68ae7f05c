"""The built-in functions of reward expressions (language.md §4) and their registry.

Every function is total over reward values (`str`, `int`, `float`, `bool`, `None`,
lists and JSON objects): a wrong type gives a defined result (`False`, `0`, `""`,
`None`) or raises `RewardError` with a sentence for the user, never another
exception. The choices where the language reference is silent:

- Text conversion: `null` is `""`, booleans are `"true"`/`"false"`, integral floats
  print without a fraction (`2.0` is `"2"`), lists and objects print as JSON.
- `exact(a, b)` compares the two texts unchanged. `normalized_exact(a, b)` compares
  them after Unicode NFKC, case folding, collapsing whitespace, and removing
  enclosing `$...$` and trailing `.,;:!?`.
- Numbers in text are written with an optional sign (`-` or `−`), digits with
  optional `,` thousands separators (`1,234`), an optional decimal part and an
  optional exponent (`1e-6`). `a/b` of two integers is a fraction and means its
  value; a trailing `%` is ignored (`50%` is 50).
- `numeric_equal(a, b, tol = 1e-6)`: `tol` is optional; true when both sides are
  numbers (or texts that are entirely one number) and `|a - b| <= tol * max(1, |a|, |b|)`.
  A negative `tol` is an error.
- `last_number(text)` is the value of the last number in the text (an `int` when
  written without fraction or exponent), or `null` when there is none.
- `boxed(text)` is the content of the last `\\boxed{...}` whose braces balance
  (`\\{` and `\\}` do not count), `""` when there is none.
- `json_field(text, "a.b.0")` looks for JSON objects in the text (the whole text, or
  each `{...}` that decodes, left to right) and returns the value at the dotted path
  in the first object that has it; a number segment indexes a list. Missing is `null`.
- `math_equal(a, b)` is symbolic equivalence by `math-verify`, with `b` the gold
  answer. Math-verify's own time limits apply (`MATH_VERIFY_TIMEOUT_S` per parse
  and per comparison) when it runs on a main thread; the reward scorer runs it in a
  worker process with an outer deadline, as every builtin marked `isolated`.
- `matches(text, regex)` is `re.search`; an invalid pattern is an error.
- `min(...)` / `max(...)` take numbers, or one list of numbers.
  `clip(x, lo, hi)` needs `lo <= hi`.
- `length` counts characters of a text or items of a list; `null` has length 0.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Union

from grpo_dsl.core.errors import GrpoError

__all__ = [
    "BUILTINS",
    "MATH_VERIFY_TIMEOUT_S",
    "READ_NAMES",
    "Builtin",
    "RewardError",
    "Value",
    "as_number",
    "as_text",
    "boxed",
    "clip",
    "contains",
    "exact",
    "json_field",
    "last_number",
    "length",
    "lower",
    "math_equal",
    "matches",
    "maximum",
    "minimum",
    "normalized_exact",
    "numeric_equal",
    "parse_number",
    "strip",
]

Value = Union[str, int, float, bool, None, list[Any], dict[str, Any]]

READ_NAMES: tuple[str, ...] = ("output", "tokens", "tool_calls")

MATH_VERIFY_TIMEOUT_S = 3
DEFAULT_TOLERANCE = 1e-6


class RewardError(GrpoError):
    """A reward expression cannot be evaluated; the message is meant for the user."""


def as_text(value: Value) -> str:
    """The text form of a value, as the builtins compare and search it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


_INTEGER = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
_NUMBER = rf"(?:{_INTEGER})(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
_SIGN = r"(?:(?<![\w)\].])[-−])?"
_NUMBER_RE = re.compile(
    rf"(?P<num>{_SIGN}(?:{_NUMBER}))(?:\s*/\s*(?P<den>{_INTEGER})(?!\.?\d))?"
)
_WHOLE_NUMBER_RE = re.compile(rf"\s*(?P<num>[-−+]?(?:{_NUMBER}))(?:\s*/\s*(?P<den>{_INTEGER}))?\s*%?\s*")


def _number_value(numerator: str, denominator: str | None) -> int | float | None:
    text = numerator.replace(",", "").replace("−", "-")
    try:
        number: int | float = int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if denominator is None:
        return number
    divisor = int(denominator.replace(",", ""))
    return number / divisor if divisor else number


def parse_number(text: str) -> int | float | None:
    """The number a whole text spells (`"1,234"`, `"-3/4"`, `"50%"`), or None."""
    found = _WHOLE_NUMBER_RE.fullmatch(text)
    return _number_value(found["num"], found["den"]) if found else None


def as_number(value: Value) -> int | float | None:
    """A value as a number: booleans are 1 and 0, texts must be entirely a number."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return parse_number(value)
    return None


def _required_number(value: Value, function: str) -> int | float:
    number = as_number(value)
    if number is None:
        raise RewardError(f"{function}() expects numbers, got {as_text(value)!r}")
    return number


def exact(a: Value, b: Value) -> bool:
    """True when the two values have the same text."""
    return as_text(a) == as_text(b)


def _normalize(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text.rstrip(".,;:!? ")


def normalized_exact(a: Value, b: Value) -> bool:
    """True when the texts are equal up to case, spacing, `$...$` and final punctuation."""
    return _normalize(as_text(a)) == _normalize(as_text(b))


def numeric_equal(a: Value, b: Value, tol: Value = DEFAULT_TOLERANCE) -> bool:
    """True when both are numbers within `tol`, relative to the larger magnitude (at least 1)."""
    tolerance = _required_number(tol, "numeric_equal")
    if tolerance < 0:
        raise RewardError("numeric_equal() needs a tolerance >= 0")
    x, y = as_number(a), as_number(b)
    if x is None or y is None:
        return False
    return abs(x - y) <= tolerance * max(1.0, abs(x), abs(y))


def _math_expressions(text: str, timeout: int | None) -> list[Any]:
    from math_verify import parse  # type: ignore[import-untyped]

    parsed: list[Any] = parse(text, parsing_timeout=timeout)
    return parsed or list(parse(f"${text}$", parsing_timeout=timeout))


def math_equal(a: Value, b: Value) -> bool:
    """True when `a` is mathematically equivalent to the gold answer `b` (math-verify)."""
    from math_verify import verify
    from math_verify.errors import TimeoutException  # type: ignore[import-untyped]

    answer, gold = as_text(a).strip(), as_text(b).strip()
    if not answer or not gold:
        return False
    timeout = MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = _math_expressions(gold, timeout)
        answer_parsed = _math_expressions(answer, timeout)
        if not gold_parsed or not answer_parsed:
            return False
        return bool(verify(gold_parsed, answer_parsed, timeout_seconds=timeout))
    except (Exception, TimeoutException):
        return False


def contains(text: Value, part: Value) -> bool:
    """True when `part` occurs in the text, or equals an item when `text` is a list."""
    if isinstance(text, list):
        return any(exact(item, part) for item in text)
    return as_text(part) in as_text(text)


def matches(text: Value, regex: Value) -> bool:
    """True when the regular expression (Python syntax) matches somewhere in the text."""
    try:
        pattern = re.compile(as_text(regex))
    except re.error as exc:
        raise RewardError(f"matches(): invalid regular expression {as_text(regex)!r}: {exc}") from None
    return pattern.search(as_text(text)) is not None


_BOXED = "\\boxed{"


def _closing_brace(text: str, start: int) -> int | None:
    depth = 1
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def boxed(text: Value) -> str:
    """The content of the last `\\boxed{...}` with balanced braces, or `""`."""
    source = as_text(text)
    start = source.rfind(_BOXED)
    while start != -1:
        content_start = start + len(_BOXED)
        end = _closing_brace(source, content_start)
        if end is not None:
            return source[content_start:end]
        start = source.rfind(_BOXED, 0, start)
    return ""


def last_number(text: Value) -> int | float | None:
    """The value of the last number written in the text, or null."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return as_number(text)
    found = None
    for found in _NUMBER_RE.finditer(as_text(text)):
        pass
    return _number_value(found["num"], found["den"]) if found else None


def _json_objects(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    try:
        return [json.loads(text)]
    except (ValueError, RecursionError):
        pass
    objects: list[Any] = []
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except (ValueError, RecursionError):
            index = text.find("{", index + 1)
            continue
        objects.append(value)
        index = text.find("{", end)
    return objects


_MISSING = object()


def _lookup(value: Any, path: Sequence[str]) -> Any:
    for segment in path:
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return _MISSING
    return value


def json_field(text: Value, path: Value) -> Value:
    """The value at a dotted path (`"a.b.0"`) in the first JSON object of the text that has it."""
    segments = as_text(path).split(".") if as_text(path) else []
    sources = [text] if isinstance(text, (dict, list)) else _json_objects(as_text(text))
    for source in sources:
        found = _lookup(source, segments)
        if found is not _MISSING:
            return found  # type: ignore[no-any-return]
    return None


def length(text: Value) -> int:
    """The number of characters of a text, or of items of a list."""
    if isinstance(text, (list, dict)):
        return len(text)
    return len(as_text(text))


def lower(text: Value) -> str:
    """The text in lower case."""
    return as_text(text).lower()


def strip(text: Value) -> str:
    """The text without leading and trailing whitespace."""
    return as_text(text).strip()


def _numbers(values: Sequence[Value], function: str) -> list[int | float]:
    items: Sequence[Value] = values[0] if len(values) == 1 and isinstance(values[0], list) else values
    if not items:
        raise RewardError(f"{function}() needs at least one number")
    return [_required_number(v, function) for v in items]


def minimum(*values: Value) -> int | float:
    """The smallest of the numbers (or of one list of numbers)."""
    return min(_numbers(values, "min"))


def maximum(*values: Value) -> int | float:
    """The largest of the numbers (or of one list of numbers)."""
    return max(_numbers(values, "max"))


def clip(x: Value, lo: Value, hi: Value) -> int | float:
    """`x` limited to the interval [lo, hi]."""
    value, low, high = (_required_number(v, "clip") for v in (x, lo, hi))
    if low > high:
        raise RewardError(f"clip() needs lo <= hi, got {as_text(lo)} > {as_text(hi)}")
    return min(max(value, low), high)


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in function: its name, arity (`max_args` None means variadic) and docs.

    `isolated` builtins may take unbounded time on adversarial input; the reward
    scorer runs them in a worker process under a deadline.
    """

    name: str
    min_args: int
    max_args: int | None
    function: Callable[..., Value]
    doc: str
    isolated: bool = False

    @property
    def signature(self) -> str:
        """How a call is written, with the argument names: `numeric_equal(a, b, tol = 1e-06)`."""
        arguments = []
        for parameter in inspect.signature(self.function).parameters.values():
            if parameter.kind is parameter.VAR_POSITIONAL:
                arguments.append(f"{parameter.name}...")
            elif parameter.default is parameter.empty:
                arguments.append(parameter.name)
            else:
                arguments.append(f"{parameter.name} = {parameter.default!r}")
        return f"{self.name}({', '.join(arguments)})"

    def arity_error(self, count: int) -> str | None:
        """A sentence describing the mismatch when `count` arguments are wrong, else None."""
        if self.max_args is None:
            return None if count >= self.min_args else f"{self.name}() takes at least {self.min_args} argument(s), got {count}"
        if self.min_args <= count <= self.max_args:
            return None
        wanted = str(self.min_args) if self.min_args == self.max_args else f"{self.min_args} to {self.max_args}"
        return f"{self.name}() takes {wanted} argument(s), got {count}"


def _builtin(name: str, min_args: int, max_args: int | None, function: Callable[..., Value], isolated: bool = False) -> Builtin:
    doc = (function.__doc__ or "").strip().splitlines()[0]
    return Builtin(name, min_args, max_args, function, doc, isolated)


BUILTINS: Mapping[str, Builtin] = MappingProxyType(
    {
        b.name: b
        for b in (
            _builtin("exact", 2, 2, exact),
            _builtin("normalized_exact", 2, 2, normalized_exact),
            _builtin("numeric_equal", 2, 3, numeric_equal),
            _builtin("math_equal", 2, 2, math_equal, isolated=True),
            _builtin("contains", 2, 2, contains),
            _builtin("matches", 2, 2, matches, isolated=True),
            _builtin("boxed", 1, 1, boxed),
            _builtin("last_number", 1, 1, last_number),
            _builtin("json_field", 2, 2, json_field),
            _builtin("length", 1, 1, length),
            _builtin("lower", 1, 1, lower),
            _builtin("strip", 1, 1, strip),
            _builtin("min", 1, None, minimum),
            _builtin("max", 1, None, maximum),
            _builtin("clip", 3, 3, clip),
        )
    }
)
