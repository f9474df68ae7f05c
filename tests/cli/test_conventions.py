"""The conventions every verb shares: folders where files go, `fmt --diff` and `-`,
`-q`/`-v`, `--color` with `NO_COLOR`, and the exit statuses of docs/cli.md."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from grpo_dsl.cli import main
from grpo_dsl.cli.main import EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, SUBCOMMANDS

CHECKOUT = Path(__file__).resolve().parents[2]
PROGRAMS = CHECKOUT / "programs"
CLEAN = 'grpo 1\n\nmodel m {\n  name = "x"\n}\n'
MESSY = 'grpo 1\nmodel m {   name="x" }\n'
BROKEN = "grpo 1\nmodel m {\n"
ESCAPE = "\x1b["


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ folders


def test_check_takes_a_folder_and_checks_every_program_under_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(PROGRAMS)]) == EXIT_OK
    programs = [p for p in PROGRAMS.rglob("*.grpo") if not any(part.startswith(".") for part in p.parts)]
    assert f"checked {len(programs)} files: 0 errors" in capsys.readouterr().err


def test_a_folder_with_a_broken_program_fails_and_hidden_folders_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.grpo", CLEAN)
    write(tmp_path, ".cache/ignored.grpo", BROKEN)
    assert main(["check", str(tmp_path)]) == EXIT_OK
    write(tmp_path, "sub/b.grpo", BROKEN)
    assert main(["check", str(tmp_path)]) == EXIT_PROBLEMS
    captured = capsys.readouterr()
    assert "sub/b.grpo:2:10: error[E0001]" in captured.out and "ignored" not in captured.out


def test_missing_paths_and_empty_folders_are_wrong_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == EXIT_USAGE
    assert main(["fmt", str(tmp_path / "nope.grpo")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no .grpo files in" in err and "no such file or folder" in err


# ---------------------------------------------------------------------- fmt


def test_fmt_diff_shows_the_change_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.grpo", MESSY)
    assert main(["fmt", "--diff", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert path.read_text() == MESSY
    assert f"--- {path} (before)" in out and '-model m {   name="x" }' in out and '+  name = "x"' in out
    assert main(["fmt", "--diff", "--check", str(path)]) == EXIT_PROBLEMS
    assert main(["fmt", str(path)]) == EXIT_OK and path.read_text() == CLEAN
    capsys.readouterr()
    assert main(["fmt", "--diff", str(path)]) == EXIT_OK and capsys.readouterr().out == ""


def test_fmt_reads_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "-"]) == EXIT_OK
    assert capsys.readouterr().out == CLEAN
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "--check", "-"]) == EXIT_PROBLEMS
    assert capsys.readouterr().out == "would reformat -\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(BROKEN))
    assert main(["fmt", "-"]) == EXIT_PROBLEMS
    assert "<stdin>:2:10: error[E0001]" in capsys.readouterr().out


def test_standard_input_is_not_mixed_with_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", "-", str(write(tmp_path, "p.grpo", CLEAN))]) == EXIT_USAGE
    assert "cannot be mixed" in capsys.readouterr().err


# ------------------------------------------------------- -q, -v and --color


def test_quiet_hides_the_summary_and_verbose_names_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "p.grpo", CLEAN)
    assert main(["check", "-q", str(path)]) == EXIT_OK
    assert capsys.readouterr().err == ""
    assert main(["check", "-v", str(path)]) == EXIT_OK
    assert capsys.readouterr().err == f"checking {path}\nchecked 1 file: 0 errors, 0 warnings\n"
    assert main(["check", "-q", "-v", str(path)]) == EXIT_USAGE


def test_verbose_shows_the_traceback_of_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    write(tmp_path, "run/run.json", "{not json")
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "r.html")]) == EXIT_PROBLEMS
    plain = capsys.readouterr().err
    assert main(["report", "-v", str(tmp_path / "run"), "-o", str(tmp_path / "r.html")]) == EXIT_PROBLEMS
    verbose = capsys.readouterr().err
    assert "Traceback" not in plain and "Traceback (most recent call last)" in verbose


@pytest.mark.parametrize(
    ("choice", "no_color", "colored"),
    [("always", True, True), ("never", False, False), ("auto", False, False)],
)
def test_color_choice_and_no_color(
    choice: str, no_color: bool, colored: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    path = write(tmp_path, "p.grpo", BROKEN)
    assert main(["check", "--color", choice, str(path)]) == EXIT_PROBLEMS
    assert (ESCAPE in capsys.readouterr().out) is colored


def test_auto_colors_a_terminal_unless_no_color_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from grpo_dsl.cli.console import Console

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Console().color(Terminal()) and not Console().color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not Console().color(Terminal())
    monkeypatch.setenv("NO_COLOR", "")  # an empty NO_COLOR does not count (no-color.org)
    assert Console().color(Terminal())


def test_every_verb_but_the_language_server_takes_the_common_options() -> None:
    with_options = {s.name for s in SUBCOMMANDS if s.common}
    assert with_options == {s.name for s in SUBCOMMANDS} - {"module", "cache", "lsp"}  # module's and cache's actions take them
    for subcommand in SUBCOMMANDS:
        assert main([subcommand.name, "--help"]) == EXIT_OK


# ---------------------------------------------------------------- exit codes


def test_the_exit_statuses_are_the_table_of_docs_cli() -> None:
    text = (CHECKOUT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `(\d+)` \| (.*?) \|$", text, re.M))
    assert sorted(map(int, table)) == sorted({EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERRUPTED})


def test_every_verb_is_documented_in_docs_cli() -> None:
    text = (CHECKOUT / "docs" / "cli.md").read_text(encoding="utf-8")
    for subcommand in SUBCOMMANDS:
        assert f"### `grpo {subcommand.name}" in text, subcommand.name


def test_a_copied_program_folder_formats_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(PROGRAMS, tmp_path / "programs", ignore=shutil.ignore_patterns("data", "prompts"))
    assert main(["fmt", "--check", str(tmp_path / "programs")]) == EXIT_OK
    assert capsys.readouterr().out == ""
