"""The quick start: its program checks clean, its data is what its generator writes, and
a short learning loop of it runs on the real embedded local model."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from grpo_dsl.learning.run import start_run
from grpo_dsl.plan import load_plan

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
QUICKSTART = PROGRAMS / "quickstart.grpo"
SPLITS = ("train", "validate", "heldout")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_quickstart", PROGRAMS / "data" / "make_quickstart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(split: str) -> list[dict[str, str]]:
    lines = (PROGRAMS / "data" / f"quickstart_{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_the_quickstart_checks_clean() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "grpo_dsl.cli", "check", str(QUICKSTART)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 errors, 0 warnings" in checked.stdout + checked.stderr


def test_the_data_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = _generator().write_splits(tmp_path)
    assert [p.name for p in written] == [f"quickstart_{s}.jsonl" for s in SPLITS]
    for path in written:
        assert path.read_bytes() == (PROGRAMS / "data" / path.name).read_bytes(), path.name


def test_the_splits_share_no_date_and_every_answer_is_the_date_in_words() -> None:
    seen: set[str] = set()
    for split in SPLITS:
        rows = _rows(split)
        answers = {row["answer"] for row in rows}
        assert len(answers) == len(rows), f"{split} repeats a date"
        assert not answers & seen, f"{split} shares a date with an earlier split"
        seen |= answers
        for row in rows:
            date = datetime.date.fromisoformat(row["answer"])
            words = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", row["date"]).replace("the ", "").replace(" of", "")
            assert date.strftime("%B") in words and str(date.year) in words and re.search(rf"\b{date.day}\b", words), row


def _short_quickstart(folder: Path) -> Path:
    """The quick start cut down to one step of four questions with four answers each, the
    gate on two validation questions: a few dozen short calls."""
    shutil.copytree(PROGRAMS / "data", folder / "data")
    text = QUICKSTART.read_text(encoding="utf-8")
    for pattern, replacement in (
        (r"(dataset train\s*\{[^}]*?)\s*\}", r"\1\n  limit = 4\n}"),
        (r"(dataset validate\s*\{[^}]*?)\s*\}", r"\1\n  limit = 2\n}"),
        (r"group_size\s*=\s*\d+", "group_size = 4"),
        (r"batch_size\s*=\s*\d+", "batch_size = 4"),
        (r"epochs\s*=\s*\d+", "epochs = 1"),
    ):
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"the quick start no longer has one match for {pattern!r}"
    program = folder / "quickstart.grpo"
    program.write_text(text, encoding="utf-8")
    return program


@pytest.mark.local_model
def test_one_step_of_the_quickstart_runs_on_the_local_model(tmp_path: Path) -> None:
    program = _short_quickstart(tmp_path)
    result = start_run(load_plan(program), "date_format", base_dir=tmp_path, runs_root=tmp_path / "runs", stream=None)

    assert (result.status, result.message) == ("completed", None)
    (step,) = result.steps
    assert (step.groups, step.kept + step.skipped) == (4, 4)
    events = [json.loads(line) for line in (result.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    calls = Counter(e["stage"] for e in events if e["event"] == "call")
    assert calls["rollout"] == 16
    assert calls["contrast"] == calls["advantage"] == step.kept
    assert calls["consolidate"] <= 1
    step_dir = result.run_dir / "steps" / "0001"
    groups = json.loads((step_dir / "rollouts.json").read_text(encoding="utf-8"))
    for group in groups:
        assert group["messages"][-1]["content"].startswith("Write the date ")
        for rollout in group["rollouts"]:
            assert rollout["error"] is None
            assert rollout["output"].strip()
    rewards = json.loads((step_dir / "rewards.json").read_text(encoding="utf-8"))
    assert all(r in (0.0, 1.0) for g in rewards for r in g["rewards"])
    for proposal in json.loads((step_dir / "proposals.json").read_text(encoding="utf-8")):
        assert proposal["rule"] or proposal["error"]
    gates = [e for e in events if e["event"] == "gate"]
    assert len(gates) == (0 if step.gate is None else 1)
    assert calls["validate"] == (0 if step.gate is None else 16)
    assert json.loads((result.run_dir / "library.json").read_text(encoding="utf-8")) == result.library.to_json()
