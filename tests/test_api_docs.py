"""The worked example of docs/python.md prints what the page says it prints.

The script is taken from the page, run in a process of its own against the test
endpoint serving the date world, and its output compared with the page's output
block, line for line; only the run id (a timestamp) may differ.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.endpoint import Endpoint

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python.md"
RUN_ID = re.compile(r"\d{8}-\d{6}(-\d+)?")


def example() -> tuple[str, str]:
    """The script of the worked example and the output the page shows for it."""
    section = PAGE.read_text(encoding="utf-8").split("## A worked example", 1)[1]
    script = section.split("```python\n", 1)[1].split("```", 1)[0]
    output = section.split("```text\n", 1)[1].split("```", 1)[0]
    return script, output


def test_the_worked_example_prints_what_the_page_shows(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    script, shown = example()
    (tmp_path / "example.py").write_text(script, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env={**os.environ, "DATES_BASE_URL": endpoint.base_url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert RUN_ID.sub("RUN", done.stdout).splitlines() == RUN_ID.sub("RUN", shown).splitlines()
    assert len(list((tmp_path / "runs" / ".data").glob("*.jsonl"))) == 2  # the rows given from Python, as files
