"""`grpo check` reads every row, so data that a run would reject (after paying) is an error first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.learn_world import write_world

from grpo_dsl.cli import main

ROW = '{"id": "d%d", "day": 1, "month": 2, "year": %d, "answer": "x"}'
GOOD = [ROW % (i, 1990 + i) for i in range(150)]

BAD_DATA = {
    "a lone surrogate": ("dates.jsonl", "\n".join([*GOOD, '{"id": "s", "day": 1, "month": 2, "year": 3, "answer": "\\ud800"}']) + "\n",
                         "E0403", "holds a lone surrogate"),
    "a value nested 100,000 deep": ("dates.jsonl", "\n".join([*GOOD[:3], '{"id": "n", "day": ' + "[" * 100_000 + "]" * 100_000 + "}"]) + "\n",
                                    "E0403", "nested too deeply to read"),
    "a malformed row after the first hundred": ("dates.jsonl", "\n".join([*GOOD, '{"id": "m", "day": 1 "month": 2}']) + "\n",
                                                "E0403", "line 151: invalid JSON"),
    "an empty dataset": ("dates.jsonl", "", "E0406", "dataset `dates` has no rows"),
    "two rows with one id": ("dates.jsonl", "\n".join([*GOOD[:5], ROW % (2, 2001)]) + "\n", "E0407", "rows 3 and 6 of dataset `dates` have the same id `d2`"),
    "a short CSV row": ("dates.csv", "id,day,month,year,answer\n" + "".join(f"c{i},1,2,{1990 + i},x\n" for i in range(120)) + "c,1,2\n",
                        "E0403", "line 122: expected 5 columns"),
    "an unclosed CSV quote": ("dates.csv", 'id,day,month,year,answer\nq1,1,2,1990,x\nq2,1,2,"1991,x\n', "E0403", "unexpected end of data"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_check_and_run_reject_what_a_run_would_choke_on(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, text, code, words = BAD_DATA[case]
    program = write_world(tmp_path, "http://127.0.0.1:9/v1")
    program.write_text(program.read_text().replace('source = "dates.jsonl"', f'source = "{name}"'))
    (tmp_path / name).write_text(text, encoding="utf-8")

    assert main(["check", str(program)]) == 1
    out = capsys.readouterr().out
    assert f"error[{code}]" in out and words in out, out

    assert main(["run", str(program), "--runs", str(tmp_path / "runs")]) == 1
    assert f"error[{code}]" in capsys.readouterr().err  # a verb's diagnostics go to standard error (docs/cli.md)
    assert not (tmp_path / "runs").exists(), "nothing was started"


def test_the_good_rows_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = write_world(tmp_path, "http://127.0.0.1:9/v1")
    (tmp_path / "dates.jsonl").write_text("\n".join(GOOD) + "\n")
    assert main(["check", str(program)]) == 0, capsys.readouterr().out
    assert json.loads(GOOD[0])["id"] == "d0"
