"""The one Jinja environment: sandboxed, strict, and on a budget for every render."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from grpo_dsl.core.templating import RenderBudget, TemplateBudgetError, sandbox

ORDINARY = {
    "fields": "Q: {{ question }} ({{ n + 1 }}, {{ n * 2 }}, {{ 2 ** 10 }}, {{ '%05.1f' % 3.14159 }})",
    "loop": "{% for e in experiences %}[{{ e.id }}] {{ e.text }}{% if not loop.last %}\n{% endif %}{% endfor %}",
    "filters": "{{ experiences | map(attribute='text') | join('; ') }} {{ question | upper | replace('WHAT', 'which') | center(40) }}",
    "methods": "{{ ', '.join(['a', 'b']) }} {{ question.replace('2', 'two') }} {{ '{:>6}|{}'.format(n, question) }} {{ 'x'.ljust(3, '.') }}",
    "macro": "{% macro item(e) %}- {{ e.text }}{% endmacro %}{% for e in experiences %}{{ item(e) }}\n{% endfor %}",
    "set and concat": "{% set ns = namespace(s='') %}{% for c in 'abc' %}{% set ns.s = ns.s ~ c ~ c %}{% endfor %}{{ ns.s }}",
    "lists": "{{ ([1, 2] * 3) | sum }} {{ [[1], [2, 3]] | sum(start=[]) }} {{ range(5) | list }} {{ question | wordwrap(5) | indent(2) }}",
    "json": "{{ experiences | tojson }} {{ experiences | length }} {{ (experiences * 2) | batch(3) | list | length }}",
}
VALUES = {
    "question": "What is 2 + 2?",
    "n": 41,
    "experiences": [{"id": "E1", "text": "Show the steps."}, {"id": "E2", "text": "Check the units."}],
}


@pytest.mark.parametrize("name", list(ORDINARY))
def test_ordinary_templates_render_as_jinja_renders_them(name: str) -> None:
    plain = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    expected = plain.from_string(ORDINARY[name]).render(VALUES)
    assert sandbox().from_string(ORDINARY[name]).render(VALUES) == expected


HOSTILE = {
    "a 10 GB string": "{{ 'x' * 10 ** 10 }}",
    "a 10 GB string from the data": "{{ question * times }}",
    "a list of 10^11 items": "{{ ([1] * 100000000000) | length }}",
    "a list of large references": "{% set s = 'y' * 1000000 %}{{ [s] * 100000 }}",
    "nested loops of 10^10 iterations": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "loops over data": "{% for i in range(n) %}{% for j in range(n) %}{{ j }}{% endfor %}{% endfor %}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling with +": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "a macro's buffer": "{% macro m(s) %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endmacro %}{{ m('z' * 1000000) | length }}",
    "str.center": "{{ 'x'.center(10000000000) }}",
    "the center filter": "{{ 'x' | center(10000000000) }}",
    "str.join": "{% set s = 'y' * 1000000 %}{{ s.join(['a'] * 100000) }}",
    "the join filter": "{% set s = 'y' * 1000000 %}{{ ['a', 'b', 'c'] | join(s) | length }}",
    "str.replace": "{% set s = 'a' * 1000000 %}{{ s.replace('a', s) }}",
    "the replace filter": "{% set s = 'a' * 1000000 %}{{ s | replace('a', 'bbb') }}",
    "str.format width": "{{ '{:>10000000000}'.format(1) }}",
    "str.format nested width": "{{ '{:>{}}'.format(1, times) }}",
    "printf width": "{{ '%10000000000d' % 1 }}",
    "the format filter": "{{ '%*d' | format(times, 1) }}",
    "expandtabs": "{% set s = '\t' * 1000000 %}{{ s.expandtabs(1000000) }}",
    "translate": "{% set s = 'a' * 1000000 %}{{ s.translate({97: 'b' * 1000000}) }}",
    "indent": "{% set s = '\n' * 1000000 %}{{ s | indent(1000000) }}",
    "wordwrap": "{% set s = 'a ' * 500000 %}{{ s | wordwrap(1, wrapstring='b' * 1000000) }}",
    "batch": "{{ [1] | batch(1000000, 'x' * 1000000) | list }}",
    "sum of lists": "{% set l = [1] * 1000000 %}{{ [l, l, l] | sum(start=[]) | length }}",
    "a huge power": "{{ 7 ** 100000000 }}",
    "recursion": "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
}


RENDER_UNDER_A_MEMORY_LIMIT = """
import json, resource, sys
from grpo_dsl.core.templating import TemplateBudgetError, sandbox

size = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmSize:')) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 768 * 1024 * 1024, resource.RLIM_INFINITY))
outcomes = {}
for name, source in json.load(sys.stdin).items():
    try:
        sandbox().from_string(source).render(question='What is 2 + 2?', times=10**10, n=100_000)
        outcomes[name] = 'rendered'
    except TemplateBudgetError as error:
        outcomes[name] = str(error)
    except MemoryError:
        outcomes[name] = 'MemoryError'
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def hostile_outcomes() -> dict[str, str]:
    """How each hostile template ended, rendered in a process that may allocate only
    768 MB more than it has after importing grpo_dsl: a template that allocated its
    10 GB before being stopped would end in a MemoryError."""
    finished = subprocess.run(
        [sys.executable, "-c", RENDER_UNDER_A_MEMORY_LIMIT], input=json.dumps(HOSTILE), capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr
    outcomes: dict[str, str] = json.loads(finished.stdout)
    return outcomes


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_template_past_its_budget_is_stopped_before_it_allocates(hostile_outcomes: dict[str, str], name: str) -> None:
    outcome = hostile_outcomes[name]
    assert outcome not in ("rendered", "MemoryError") and "MemoryError" not in outcome, outcome
    assert re.search(r"would make a value of more than|printed more than|loops ran more than|took longer|RecursionError", outcome)


def test_the_clock_stops_a_long_render() -> None:
    template = sandbox(RenderBudget(iterations=10**12, seconds=0.2)).from_string(HOSTILE["nested loops of 10^10 iterations"])
    with pytest.raises(TemplateBudgetError, match=r"took longer than 0\.2 s"):
        template.render()


def test_printed_text_counts_literal_text_in_loops() -> None:
    template = sandbox(RenderBudget(chars=1000)).from_string("{% for i in range(10) %}{% for j in range(21) %}-----{% endfor %}{% endfor %}")
    with pytest.raises(TemplateBudgetError, match="printed more than 1000 characters"):
        template.render()
    assert sandbox(RenderBudget(chars=1000)).from_string("{% for i in range(199) %}-----{% endfor %}").render() == "-" * 995


def test_each_render_has_its_own_budget() -> None:
    template = sandbox(RenderBudget(iterations=100)).from_string("{% for i in range(60) %}.{% endfor %}")
    assert [len(template.render()) for _ in range(3)] == [60, 60, 60]


@given(text=st.text(max_size=50), times=st.integers(min_value=0, max_value=10**6))
def test_a_repetition_renders_exactly_when_it_fits(text: str, times: int) -> None:
    budget = RenderBudget(chars=100_000)
    template = sandbox(budget).from_string("{{ text * times }}")
    if len(text) * times <= budget.chars:
        assert template.render(text=text, times=times) == text * times
    else:
        with pytest.raises(TemplateBudgetError):
            template.render(text=text, times=times)
