"""The HTML report: its data contract, its escaping, and what headless Chromium draws.

The browser tests drive Debian's `chromium` over the DevTools protocol (an aiohttp
websocket): they load the report from a file, count the SVG marks and measure them,
collect console errors and uncaught exceptions, and save a full-page screenshot to
`test-artifacts/report.png`. A page with a deliberate script error proves that the
console check can fail.
"""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.browser import ARTIFACTS, MEASURE, Browser, visit

from grpo_dsl.evaluation.results import Comparison, LibraryEvaluation
from grpo_dsl.evaluation.stats import Sample, paired_difference, summarize_samples
from grpo_dsl.library import word_diff
from grpo_dsl.report import (
    ExperienceChange,
    ReportData,
    ReportDataError,
    library_changes,
    render_report,
)

HOSTILE = '<script>alert("x")</script> and <img src=x onerror="alert(1)"> & "quotes"'


def synthetic_run() -> dict[str, Any]:
    """Six steps of a small run, four cost stages, and an evaluation of two libraries."""
    rewards = [0.31, 0.38, 0.36, 0.47, 0.52, 0.55]
    kept = [3, 4, 2, 4, 3, 1]
    skipped = [1, 0, 2, 0, 1, 3]
    applied = [3, 2, 1, 2, 1, 0]
    rejected = [0, 1, 1, 0, 2, 0]
    sizes = [3, 4, 4, 5, 5, 5]
    changes: list[list[dict[str, Any]]] = [
        [
            {"kind": "added", "id": "E1", "text": "Check the units of every quantity before combining them."},
            {"kind": "added", "id": "E2", "text": "When a sum telescopes, write out the first three terms."},
            {"kind": "added", "id": "E3", "text": HOSTILE},
        ],
        [{"kind": "added", "id": "E4", "text": "Verify the final answer by substituting it back."}],
        [
            {
                "kind": "modified",
                "id": "E2",
                "text": "When a sum telescopes, write out the first and last three terms.",
                "previous": "When a sum telescopes, write out the first three terms.",
            },
            {"kind": "removed", "id": "E3", "text": HOSTILE},
            {"kind": "added", "id": "E5", "text": "Prefer exact fractions to decimals."},
        ],
        [{"kind": "added", "id": "E6", "text": "Draw the figure for geometry problems."}],
        [],
        [],
    ]
    return {
        "title": "math_lessons",
        "subtitle": "programs/math.grpo · run 2025-01-01T00-00-00",
        "steps": [
            {
                "step": i + 1,
                "reward_mean": rewards[i],
                "reward_low": rewards[i] - 0.08,
                "reward_high": rewards[i] + 0.07,
                "groups_kept": kept[i],
                "groups_skipped": skipped[i],
                "ops_applied": applied[i],
                "ops_rejected": rejected[i],
                "library_size": sizes[i],
                "changes": changes[i],
                "groups": [
                    {
                        "group": f"{i + 1}:q1",
                        "question": "q1",
                        "prompt": "What is 2 + 2?",
                        "kept": True,
                        "answers": [
                            {"sample": 0, "reward": 1.0, "output": "4"},
                            {"sample": 1, "reward": 0.0, "output": HOSTILE},
                            {"sample": 2, "reward": None, "output": "", "error": "the call failed"},
                        ],
                        "summaries": ["Answered 4.", "Answered with markup."],
                        "proposals": [{"op": "add", "text": "Answer with a number.", "rationale": "the better attempt did"}],
                    },
                    {"group": f"{i + 1}:q2", "question": "q2", "kept": False, "skip_reason": "every reward is equal", "answers": []},
                ],
                "rejected": [{"op": "modify", "text": "Never check units.", "reason": "modify is not allowed by the policy", "groups": [f"{i + 1}:q1"]}],
                "gate": {"decision": "accepted", "questions": 10, "old_mean": 0.4, "new_mean": 0.5, "difference": 0.1, "low": -0.05, "high": 0.2, "p_value": 0.2},
            }
            for i in range(6)
        ],
        "questions": [
            {
                "question": f"q{n}",
                "libraries": [
                    {"library": "none", "answers": [{"sample": k, "reward": float(n % 2), "output": f"answer {n}.{k}"} for k in range(2)]},
                    {"library": "math_lessons", "answers": [{"sample": k, "reward": float(n % 3 != 0), "output": HOSTILE} for k in range(2)]},
                ],
            }
            for n in range(1, 7)
        ],
        "costs": [
            {"stage": "rollout", "calls": 120, "input_tokens": 96_000, "output_tokens": 240_000, "usd": 0.412},
            {"stage": "summary", "calls": 85, "input_tokens": 170_000, "output_tokens": 34_000, "usd": 0.118},
            {"stage": "advantage", "calls": 17, "input_tokens": 51_000, "output_tokens": 8_500, "usd": 0.031},
            {"stage": "consolidate", "calls": 6, "input_tokens": 18_000, "output_tokens": 3_000, "usd": 0.009},
        ],
        "evaluation": {
            "confidence": 0.95,
            "libraries": [
                {
                    "name": "none",
                    "questions": 30,
                    "samples": 4,
                    "metrics": {
                        "mean": {"estimate": 0.46, "low": 0.33, "high": 0.58},
                        "pass@1": {"estimate": 0.45, "low": 0.32, "high": 0.57},
                        "pass@4": {"estimate": 0.63, "low": 0.47, "high": 0.8},
                        "tokens": {"estimate": 812.0, "low": 760.0, "high": 866.0},
                    },
                },
                {
                    "name": "math_lessons",
                    "questions": 30,
                    "samples": 4,
                    "metrics": {
                        "mean": {"estimate": 0.53, "low": 0.4, "high": 0.65},
                        "pass@1": {"estimate": 0.52, "low": 0.39, "high": 0.64},
                        "pass@4": {"estimate": 0.7, "low": 0.53, "high": 0.83},
                        "tokens": {"estimate": 845.0, "low": 790.0, "high": 901.0},
                    },
                },
            ],
            "comparisons": [
                {
                    "metric": "mean",
                    "candidate": "math_lessons",
                    "baseline": "none",
                    "difference": 0.07,
                    "low": -0.01,
                    "high": 0.15,
                    "p_value": 0.094,
                    "better": 9,
                    "worse": 4,
                    "ties": 17,
                },
                {
                    "metric": "pass@4",
                    "candidate": "math_lessons",
                    "baseline": "none",
                    "difference": 0.07,
                    "low": 0.01,
                    "high": 0.13,
                    "p_value": 0.031,
                    "better": 6,
                    "worse": 1,
                    "ties": 23,
                },
            ],
        },
    }


# ------------------------------------------------------------------ data and HTML


def test_report_data_round_trips_through_json() -> None:
    data = ReportData.from_json(synthetic_run())
    assert ReportData.from_json(data.to_json()) == data
    assert data.steps[2].changes[0] == ExperienceChange(
        "modified",
        "E2",
        "When a sum telescopes, write out the first and last three terms.",
        "When a sum telescopes, write out the first three terms.",
    )
    assert [m.name for m in data.evaluation.libraries[0].metrics] == ["mean", "pass@1", "pass@4", "tokens"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("title"), "at the top level: 'title' is a required property"),
        (lambda d: d["steps"][1].update(groups_kept=-1), "at steps/1/groups_kept: -1 is less than the minimum of 0"),
        (lambda d: d["steps"][0]["changes"][0].update(kind="renamed"), "at steps/0/changes/0/kind: 'renamed' is not one of"),
        (lambda d: d["costs"][0].update(usd="cheap"), "at costs/0/usd: 'cheap' is not of type 'number'"),
        (lambda d: d["evaluation"]["comparisons"][0].update(p_value=1.5), "at evaluation/comparisons/0/p_value"),
        (lambda d: d.update(colour="blue"), "Additional properties are not allowed"),
        (lambda d: d["questions"][0]["libraries"][0]["answers"][0].update(reward="high"), "at questions/0/libraries/0/answers/0/reward"),
        (lambda d: d["steps"][0]["gate"].update(decision="maybe"), "at steps/0/gate"),
        (lambda d: d["steps"][0]["rejected"][0].pop("reason"), "at steps/0/rejected/0: 'reason' is a required property"),
    ],
)
def test_invalid_report_data_is_rejected_with_its_place(edit: Any, message: str) -> None:
    value = synthetic_run()
    edit(value)
    with pytest.raises(ReportDataError) as error:
        ReportData.from_json(value)
    assert message in str(error.value)


class ElementCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend(attrs)
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
            self._in_style = False


def test_questions_are_failing_or_changed_by_their_answers() -> None:
    data = ReportData.from_json(synthetic_run())
    # "none" scores 1 on odd questions and 0 on even ones; "math_lessons" scores 0 on q3 and q6
    assert [q.question for q in data.questions if q.failing] == ["q2", "q3", "q4", "q6"]
    assert [q.question for q in data.questions if q.changed] == ["q2", "q3", "q4"]
    assert ReportData.from_json(data.to_json()) == data


def test_experience_text_is_escaped_and_the_page_loads_nothing() -> None:
    html = render_report(ReportData.from_json(synthetic_run()))
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    elements = ElementCollector()
    elements.feed(html)
    assert elements.tags.isdisjoint({"script", "img", "link", "iframe", "object", "embed", "image", "use"})
    assert {name for name, _ in elements.attributes}.isdisjoint({"src", "href", "xlink:href", "onerror", "onload"})
    assert not any(name.startswith("on") for name, _ in elements.attributes)
    assert elements.styles and not any("url(" in style or "@import" in style for style in elements.styles)
    assert ("content", "default-src 'none'; style-src 'unsafe-inline'; img-src data:") in elements.attributes


def test_a_report_without_steps_or_evaluation_renders() -> None:
    evaluation_only = render_report(ReportData.from_json({"title": "eval", "evaluation": synthetic_run()["evaluation"]}))
    assert 'id="plot-difference"' in evaluation_only and 'id="plot-reward"' not in evaluation_only
    learning_only = render_report(ReportData.from_json({**synthetic_run(), "evaluation": None}))
    assert 'id="plot-reward"' in learning_only and 'id="evaluation"' not in learning_only
    one_step = {**synthetic_run(), "steps": synthetic_run()["steps"][:1], "costs": [{"stage": "rollout", "calls": 0, "usd": 0}]}
    assert 'id="plot-ops"' in render_report(ReportData.from_json(one_step))


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab c\n<>&"), max_size=40), st.text(alphabet=st.sampled_from("ab c\n<>&"), max_size=40))
def test_word_diff_rebuilds_both_texts(old: str, new: str) -> None:
    segments = word_diff(old, new)
    assert "".join(s.text for s in segments if s.kind != "ins") == old
    assert "".join(s.text for s in segments if s.kind != "del") == new
    assert all(s.text for s in segments)


def test_word_diff_marks_changed_words() -> None:
    segments = word_diff("write the first three terms", "write the first and last three terms")
    assert [(s.kind, s.text) for s in segments] == [("same", "write the first "), ("ins", "and last "), ("same", "three terms")]


def test_library_changes_between_versions() -> None:
    before = {"E1": "one", "E2": "two", "E3": "three"}
    after = {"E1": "one", "E2": "two, revised", "E4": "four"}
    assert library_changes(before, after) == (
        ExperienceChange("added", "E4", "four"),
        ExperienceChange("modified", "E2", "two, revised", "two"),
        ExperienceChange("removed", "E3", "three"),
    )


def test_statistics_results_convert_to_report_data() -> None:
    rewards = {"q1": [1.0, 0.0], "q2": [1.0, 1.0], "q3": [0.0, 0.0]}
    samples = [Sample(q, i, r) for q, rs in rewards.items() for i, r in enumerate(rs)]
    summary = summarize_samples(samples, metrics=["mean", "pass@2"])
    library = LibraryEvaluation.from_summary("math_lessons", summary)
    assert (library.questions, library.samples) == (3, 2)
    assert [m.name for m in library.metrics] == ["mean", "pass@2", "tool_calls", "tokens", "cost"]
    assert library.metrics[1].estimate == summary.metric("pass@2").estimate
    result = paired_difference([1.0, 1.0, 0.5], [0.5, 1.0, 0.0])
    comparison = Comparison.from_paired("mean", "math_lessons", "none", result)
    assert (comparison.difference, comparison.p_value, comparison.better) == (result.difference, result.p_value, 2)
    assert comparison.includes_zero == result.includes_zero


# ------------------------------------------------------------------ Chromium


















def assert_heights_proportional(bars: list[dict[str, Any]]) -> None:
    """Every bar's drawn height is its value times one common scale."""
    scale = max(b["height"] for b in bars) / max(b["value"] for b in bars)
    for bar in bars:
        assert bar["height"] == pytest.approx(bar["value"] * scale, abs=1.0)


def test_report_renders_in_chromium(browser: Browser, tmp_path: Path) -> None:
    value = synthetic_run()
    data = ReportData.from_json(value)
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "report.html"
    page.write_text(render_report(data), encoding="utf-8")

    result = asyncio.run(visit(browser, page, MEASURE))
    (ARTIFACTS / "report.png").write_bytes(result.screenshot)

    assert result.errors == []
    measured = result.value
    steps = len(value["steps"])
    assert all(svg["width"] > 300 and svg["height"] > 60 for svg in measured["svgs"]), measured["svgs"]

    points = measured["reward_points"]
    assert [p["step"] for p in points] == list(range(1, steps + 1))
    assert [p["value"] for p in points] == [s["reward_mean"] for s in value["steps"]]
    assert all(a["x"] < b["x"] for a, b in zip(points, points[1:]))
    by_height = sorted(points, key=lambda p: p["value"])
    assert all(a["y"] >= b["y"] for a, b in zip(by_height, by_height[1:]))
    assert (measured["reward_bands"], measured["reward_lines"]) == (1, 1)

    assert len(measured["group_bars"]) == 2 * steps and measured["kept_bars"] == steps
    assert_heights_proportional(measured["group_bars"])
    assert len(measured["op_bars"]) == 2 * steps
    assert_heights_proportional(measured["op_bars"])
    assert [p["value"] for p in measured["library_points"]] == [s["library_size"] for s in value["steps"]]

    costs = value["costs"]
    assert [b["value"] for b in measured["cost_bars"]] == [c["usd"] for c in costs]
    widest = max(measured["cost_bars"], key=lambda b: b["width"])
    assert widest["value"] == max(c["usd"] for c in costs)

    libraries = len(value["evaluation"]["libraries"])
    assert measured["forest_estimates"] == [libraries, libraries, libraries]
    assert measured["difference_estimates"] == 2 and measured["zero_lines"] == 1
    assert "includes zero" in measured["sentences"][0] and "excludes zero" in measured["sentences"][1]

    assert measured["change_items"] == sum(len(s["changes"]) for s in value["steps"])
    assert measured["hostile_text"] and measured["images"] == 0 and measured["scripts"] == 0
    assert measured["inserted_words"] == ["and last "]

    assert result.screenshot.startswith(b"\x89PNG") and len(result.screenshot) > 20_000


def test_console_check_catches_script_errors(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><title>broken</title><p>broken</p>"
        "<script>console.error('deliberate console error');</script>"
        "<script>undefinedFunction();</script>",
        encoding="utf-8",
    )
    result = asyncio.run(visit(browser, page, "document.title"))
    assert result.value == "broken"
    assert any("deliberate console error" in e for e in result.errors), result.errors
    assert any("undefinedFunction is not defined" in e for e in result.errors), result.errors
