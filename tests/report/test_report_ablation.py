"""The ablation in the HTML report: its data, its section, and where Chromium draws each item."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from support.browser import Browser, visit
from support.endpoint import Endpoint
from support.eval_world import learn, write_program
from support.worlds import HARMFUL_LESSON

from grpo_dsl.cli import main
from grpo_dsl.report import ReportData, ReportDataError, render_report
from grpo_dsl.report.rundata import find_ablation, read_run

HOSTILE = '<img src=x onerror="alert(1)">'


def ablation() -> dict[str, Any]:
    return {
        "evaluate": "date_eval",
        "library": "date_lessons",
        "method": "loo",
        "exact": True,
        "confidence": 0.95,
        "questions": 12,
        "samples": 4,
        "full": {"estimate": 0.46, "low": 0.27, "high": 0.65},
        "items": [
            {"id": "E1", "kind": "lesson", "text": "Pad months to two digits.", "estimate": 0.29, "low": 0.17, "high": 0.42, "p_value": 0.004, "verdict": "helps"},
            {"id": "E2", "kind": "lesson", "text": HOSTILE, "estimate": -0.54, "low": -0.73, "high": -0.35, "p_value": 0.001, "verdict": "hurts"},
            {"id": "D1", "kind": "demo", "text": "2001-03-04  (demo for question h0)", "estimate": 0.0, "low": -0.1, "high": 0.12, "p_value": 1.0, "verdict": "no evidence"},
        ],
    }


def test_the_ablation_round_trips_and_is_validated() -> None:
    value = {"title": "t", "ablation": ablation()}
    data = ReportData.from_json(value)
    assert data.ablation is not None and [i.verdict for i in data.ablation.items] == ["helps", "hurts", "no evidence"]
    assert ReportData.from_json(data.to_json()) == data
    broken = {"title": "t", "ablation": {**ablation(), "method": "guess"}}
    with pytest.raises(ReportDataError, match="ablation/method"):
        ReportData.from_json(broken)


def test_the_section_lists_every_item_with_its_interval_and_verdict() -> None:
    html = render_report(ReportData.from_json({"title": "t", "ablation": ablation()}))

    assert '<section id="ablation">' in html and 'id="plot-ablation"' in html
    rows = re.findall(r'<tr class="verdict-([a-z-]+)"><td><code>(\w+)</code></td><td>(\w+)</td><td class="num"><span class="estimate-value">([^<]+)</span> <span class="ci-text">\[([^\]]+)\]</span>', html)
    assert rows == [
        ("helps", "E1", "lesson", "+0.290", "+0.170, +0.420"),
        ("hurts", "E2", "lesson", "−0.540", "−0.730, −0.350"),
        ("no-evidence", "D1", "demo", "0.000", "−0.100, +0.120"),
    ]
    assert "&lt;img src=x" in html and HOSTILE not in html
    assert "leave-one-out" in html and "the whole library scores 0.460 [0.270, 0.650]" in html


def test_the_forest_plot_puts_each_item_on_its_side_of_zero(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "ablation.html"
    page.write_text(render_report(ReportData.from_json({"title": "t", "ablation": ablation()})), encoding="utf-8")
    measure = """(() => {
      const zero = document.querySelector("#plot-ablation line.zero").getBoundingClientRect().x;
      return {zero, dots: [...document.querySelectorAll("#plot-ablation circle.estimate")].map((c) => {
        const box = c.getBoundingClientRect();
        return {value: Number(c.dataset.value), x: box.x + box.width / 2};
      })};
    })()"""

    result = asyncio.run(visit(browser, page, measure))

    assert result.errors == []
    zero, dots = result.value["zero"], result.value["dots"]
    assert [d["value"] for d in dots] == [0.29, -0.54, 0.0]
    assert dots[0]["x"] > zero + 5 and dots[1]["x"] < zero - 5 and abs(dots[2]["x"] - zero) < 2


def test_grpo_report_shows_the_ablation_of_a_run(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_program(tmp_path, endpoint)
    learned = learn(tmp_path, program, endpoint, script="support.worlds:planted_world")
    assert main(["ablate", str(program), "--runs", str(tmp_path / "runs")]) == 0
    (ablation_dir,) = (p for p in (tmp_path / "runs" / "date_eval").iterdir() if p.name != "cache")
    capsys.readouterr()

    assert find_ablation(learned.run_dir) == ablation_dir
    data = read_run(learned.run_dir)
    assert data.ablation is not None and [(i.id, i.verdict) for i in data.ablation.items] == [("E1", "helps"), ("E2", "hurts")]
    assert "ablate" in [c.stage for c in data.costs] and f"ablation {ablation_dir}" in data.subtitle
    assert main(["report", str(learned.run_dir), "-o", str(tmp_path / "run.html")]) == 0
    assert "and the ablation of 2 items" in capsys.readouterr().out
    assert HARMFUL_LESSON in (tmp_path / "run.html").read_text()

    alone = read_run(ablation_dir)
    assert alone.title == "ablate date_eval" and alone.steps == () and alone.ablation == data.ablation
    assert read_run(learned.run_dir, find=False).ablation is None


def test_the_pooled_gain_of_repeats_round_trips_and_is_said_in_words() -> None:
    library = {"name": "none", "questions": 12, "samples": 4, "metrics": {"mean": {"estimate": 0.2, "low": 0.1, "high": 0.3}}}
    pooled = {
        "metric": "mean", "learn": "date_lessons", "baseline": "none", "gains": [0.0, 0.312, 0.708],
        "difference": 0.34, "low": 0.0, "high": 0.688, "beat": 2, "beat_beyond_noise": 2,
    }
    data = ReportData.from_json({"title": "t", "evaluation": {"libraries": [library], "pooled": [pooled]}})
    assert data.evaluation is not None and data.evaluation.pooled[0].gains == (0.0, 0.312, 0.708)
    assert ReportData.from_json(data.to_json()) == data

    html = render_report(data)

    assert "date_lessons (3 repeats) − none on mean: +0.340 (95% interval over repeats and questions 0.000 to +0.688;" in html
    assert "2 of 3 repeats scored higher than none, 2 beyond noise." in html
    assert '<li class="not-significant">' in html
