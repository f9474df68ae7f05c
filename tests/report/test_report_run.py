"""`grpo report` of a real run: the run directory read into the report, checked against its files,
and the page of a real run and its evaluation drawn in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.browser import ARTIFACTS, MEASURE, Browser, visit
from support.endpoint import Endpoint
from markupsafe import escape
from support.eval_world import write_held_out, write_program
from support.learn_world import write_world
from support.worlds import LESSONS

from grpo_dsl.cli import main
from grpo_dsl.learning.replay import replay_run
from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan
from grpo_dsl.report import render_report
from grpo_dsl.report.rundata import find_evaluation, read_run
from grpo_dsl.runs.directory import read_events


@dataclass(frozen=True)
class Runs:
    program: Path
    learn_run: Path
    eval_run: Path


@pytest.fixture(scope="module")
def runs(_endpoint_process: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """A three-step run of `date_lessons` and an evaluation of `none` against its library."""
    folder = tmp_path_factory.mktemp("report-run")
    _endpoint_process.configure(script="support.worlds:date_world")
    program = write_program(folder, _endpoint_process)
    learned = start_run(load_plan(program), "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    assert learned.status == "completed"
    assert main(["eval", str(program), "--runs", str(folder / "runs"), "--format", "json"]) == 0
    (eval_run,) = (folder / "runs" / "date_eval").iterdir()
    yield Runs(program, learned.run_dir, eval_run)
    _endpoint_process.configure()


def report(run_dir: Path, target: Path, *extra: str) -> str:
    assert main(["report", str(run_dir), "-o", str(target), *extra]) == 0
    return target.read_text(encoding="utf-8")


def section_ids(html: str) -> set[str]:
    return set(re.findall(r'<section[^>]* id="([^"]+)"', html))


def test_the_report_data_follows_the_run_files(runs: Runs) -> None:
    data = read_run(runs.learn_run)

    assert data.title == "date_lessons"
    assert [s.step for s in data.steps] == [1, 2, 3]
    for step in data.steps:
        outcome = json.loads((runs.learn_run / f"steps/{step.step:04d}/outcome.json").read_text())
        assert step.reward_mean == pytest.approx(outcome["mean_reward"])
        assert (step.groups_kept, step.groups_skipped) == (outcome["kept"], outcome["skipped"])
        assert (step.ops_applied, step.ops_rejected) == (outcome["applied"], outcome["rejected"])
        assert step.library_size == outcome["library_size"]
        assert step.reward_low is not None and step.reward_high is not None
        assert step.reward_low <= step.reward_mean <= step.reward_high
    assert [[(c.kind, c.text) for c in s.changes] for s in data.steps] == [
        [("added", LESSONS[0])],
        [("added", LESSONS[1])],
        [],
    ]
    usage = json.loads((runs.learn_run / "usage.json").read_text())["by_stage"]
    learning = {c.stage: c for c in data.costs if c.stage in usage}
    assert set(learning) == {"rollout", "summary", "advantage", "consolidate"}
    for stage, cost in learning.items():
        assert (cost.calls, cost.usd, cost.input_tokens, cost.output_tokens) == (
            usage[stage]["calls"],
            usage[stage]["usd"],
            usage[stage]["prompt_tokens"],
            usage[stage]["completion_tokens"],
        )
    assert [c.stage for c in data.costs if c.stage not in usage] == ["evaluate"]
    assert data.evaluation is not None
    assert [lib.name for lib in data.evaluation.libraries] == ["none", "date_lessons"]
    assert data.evaluation.comparisons[0].low > 0


def test_the_evaluation_of_the_run_is_found_in_its_runs_folder(runs: Runs, tmp_path: Path) -> None:
    assert find_evaluation(runs.learn_run) == runs.eval_run
    other = tmp_path / "runs" / "date_lessons" / "other"
    other.mkdir(parents=True)
    assert find_evaluation(other) is None


def test_grpo_report_writes_every_section(runs: Runs, tmp_path: Path) -> None:
    html = report(runs.learn_run, tmp_path / "report.html")

    assert section_ids(html) == {"summary", "learning", "cost", "library", "steps", "evaluation", "questions"}
    for plot in ("plot-reward", "plot-groups", "plot-ops", "plot-library", "plot-cost", "plot-difference"):
        assert f'id="{plot}"' in html
    assert len(re.findall(r'<svg id="plot-forest', html)) == 3
    assert all(lesson in html for lesson in LESSONS)
    assert 'id="comparison-sentences"' in html and "excludes zero" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_the_evaluation_can_be_chosen_or_left_out(runs: Runs, tmp_path: Path) -> None:
    chosen = report(runs.learn_run, tmp_path / "chosen.html", "--eval", str(runs.eval_run))
    assert {"evaluation", "questions"} <= section_ids(chosen)
    without = report(runs.learn_run, tmp_path / "without.html", "--no-eval")
    assert section_ids(without) == {"summary", "learning", "cost", "library", "steps"}
    alone = report(runs.eval_run, tmp_path / "alone.html")
    assert section_ids(alone) == {"summary", "cost", "evaluation", "questions"}


def test_bad_run_directories_are_reported_without_a_traceback(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "not a run directory" in capsys.readouterr().err

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("run.json", "plan.json"):
        (broken / name).write_bytes((runs.learn_run / name).read_bytes())
    (broken / "steps" / "0001").mkdir(parents=True)
    (broken / "steps" / "0001" / "library.json").write_text("{not json")
    assert main(["report", str(broken), "-o", str(tmp_path / "r.html"), "--no-eval"]) == 1
    err = capsys.readouterr().err
    assert "library.json is not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_the_report_of_a_real_run_renders_in_chromium(runs: Runs, browser: Browser) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "report-run.html"
    report(runs.learn_run, page)

    result = asyncio.run(visit(browser, page, MEASURE))
    (ARTIFACTS / "report-run.png").write_bytes(result.screenshot)

    assert result.errors == []
    measured = result.value
    assert [p["step"] for p in measured["reward_points"]] == [1, 2, 3]
    assert measured["reward_bands"] == 1
    assert len(measured["group_bars"]) == 6 and len(measured["op_bars"]) == 6
    assert [p["value"] for p in measured["library_points"]] == [1, 2, 2]
    assert len(measured["cost_bars"]) == 5
    assert measured["forest_estimates"] == [2, 2, 2]
    assert measured["difference_estimates"] == 3 and measured["zero_lines"] == 1
    assert measured["change_items"] == 2
    assert all("excludes zero" in sentence for sentence in measured["sentences"])
    assert measured["scripts"] == 0


DRILL_DOWN = """
(async () => {
  const frame = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const shown = (e) => e.checkVisibility() && e.getClientRects().length > 0;
  const labels = [...document.querySelectorAll("svg")].flatMap((svg) => {
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    return [...svg.querySelectorAll("text")].map((t) => {
      const r = t.getBoundingClientRect();
      return {svg: svg.id, text: t.textContent, left: r.left - box.left, right: box.right - r.right,
              top: r.top - box.top, bottom: box.bottom - r.bottom, page_right: window.innerWidth - r.right,
              size: parseFloat(getComputedStyle(t).fontSize) * scale};
    });
  });
  const questions = [...document.querySelectorAll("details.question")];
  const first = questions[0];
  const closed = [...first.querySelectorAll("tr.answer-row")].some(shown);
  first.querySelector("summary").click();
  await frame();
  const answers = [...first.querySelectorAll("tr.answer-row")].filter(shown).map((row) => ({
    library: row.dataset.library, sample: Number(row.dataset.sample),
    reward: row.querySelector(".reward").textContent, answer: row.querySelector(".answer").textContent,
    height: row.getBoundingClientRect().height}));
  const visible = {};
  for (const filter of ["failing", "changed", "all"]) {
    document.querySelector(`label[for=filter-${filter}]`).click();
    await frame();
    visible[filter] = questions.filter(shown).map((q) => q.dataset.question);
  }
  const group = document.querySelector("details.step-detail");
  group.querySelector("summary").click();
  const firstGroup = group.querySelector("details.group");
  firstGroup.querySelector("summary").click();
  await frame();
  return {labels, question: first.dataset.question, closed, answers, visible,
          group_rows: [...firstGroup.querySelectorAll("table.answers tbody tr")].filter(shown).length,
          proposals: [...firstGroup.querySelectorAll(".proposals li")].map((li) => li.textContent),
          scripts: document.querySelectorAll("script").length, viewport: window.innerWidth};
})()
"""


def test_the_report_drill_down_and_labels_in_chromium_at_1400_px(runs: Runs, browser: Browser) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "report-drill-down.html"
    report(runs.learn_run, page)

    result = asyncio.run(visit(browser, page, DRILL_DOWN, width=1400))
    (ARTIFACTS / "report-1400.png").write_bytes(result.screenshot)

    assert result.errors == []
    measured = result.value
    assert measured["viewport"] == 1400 and measured["scripts"] == 0
    labels = measured["labels"]
    assert {label["svg"] for label in labels} >= {"plot-reward", "plot-groups", "plot-ops", "plot-library", "plot-cost", "plot-difference"}
    cut = [label for label in labels if min(label["left"], label["right"], label["top"], label["bottom"], label["page_right"]) < -0.5]
    assert cut == [], cut
    small = [label for label in labels if label["size"] < 12]
    assert small == [], small

    rows = [json.loads(line) for line in (runs.eval_run / "results.jsonl").read_text().splitlines()]
    question = measured["question"]
    expected = [row for row in rows if row["question"] == question]
    assert not measured["closed"]
    assert [(a["library"], a["sample"], a["answer"]) for a in measured["answers"]] == [(r["library"], r["sample"], r["output"]) for r in expected]
    assert [float(a["reward"]) for a in measured["answers"]] == [r["reward"] for r in expected]
    assert all(a["height"] > 0 for a in measured["answers"])

    by_question: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        by_question.setdefault(row["question"], {}).setdefault(row["library"], []).append(row["reward"])
    failing = [q for q, libs in by_question.items() if any(r is None or r <= 0 for rewards in libs.values() for r in rewards)]
    changed = [q for q, libs in by_question.items() if len({sum(r) / len(r) for r in libs.values()}) > 1]
    assert measured["visible"] == {"failing": failing, "changed": changed, "all": list(by_question)}
    assert 0 < len(changed) < len(by_question) or 0 < len(failing) < len(by_question)

    groups = json.loads((runs.learn_run / "steps/0001/rollouts.json").read_text())
    assert measured["group_rows"] == len(groups[0]["rollouts"])
    proposals = json.loads((runs.learn_run / "steps/0001/proposals.json").read_text())
    assert len(measured["proposals"]) == len(proposals[0]["operations"])


def test_rejected_operations_and_the_gate_come_from_the_run_files(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:revising_world")
    program = write_world(tmp_path, endpoint.base_url)
    write_held_out(tmp_path)
    program.write_text(program.read_text() + 'dataset held {\n  source = "held.jsonl"\n}\n')
    program.write_text(program.read_text().replace("  seed       = 3\n", "  seed       = 3\n  validate   = held\n"))
    (tmp_path / "policies.grpo").write_text("grpo 1\n\npolicy add_only {\n  ops = [add]\n}\n")
    learned = start_run(load_plan(program), "date_lessons", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)
    assert learned.status == "completed", learned.message
    replayed = replay_run(learned.run_dir, tmp_path / "policies.grpo", "add_only", runs_root=tmp_path / "replays", stream=None)
    assert replayed.status == "completed", replayed.message

    gates = {e["step"]: e for e in read_events(learned.run_dir / "events.jsonl") if e["event"] == "gate"}
    assert gates, "the run never gated a change"
    for step in read_run(learned.run_dir, find=False).steps:
        event = gates.get(step.step)
        if event is None:
            assert step.gate is None
            continue
        assert step.gate is not None and step.gate.decision == event["decision"]
        result = event["result"]
        assert (step.gate.questions, step.gate.old_mean, step.gate.new_mean) == (result["questions"], result["old_mean"], result["new_mean"])
        assert (step.gate.difference, step.gate.low, step.gate.high, step.gate.p_value) == (result["difference"], result["low"], result["high"], result["p_value"])

    data = read_run(replayed.run_dir, find=False)
    shown = [(r.op, r.text, r.reason) for s in data.steps for r in s.rejected]
    recorded = [
        (o["op"]["op"], o["op"].get("text") or o["op"].get("id"), o["reason"])
        for s in data.steps
        for o in json.loads((replayed.run_dir / f"steps/{s.step:04d}/report.json").read_text())["rejected"]
    ]
    assert recorded and shown == recorded
    html = render_report(data)
    for _, text, reason in shown:
        assert str(escape(reason)) in html and str(escape(text)) in html
