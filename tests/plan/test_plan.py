"""The execution plan: golden plans of the example programs, the schema, defaults,
paths, secrets, determinism, the estimate and `grpo plan`."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from grpo_dsl.cli import main
from grpo_dsl.core.env import resolve_env
from grpo_dsl.language.attributes import SPECS, defaults
from grpo_dsl.language.diagnostics import ProgramError
from grpo_dsl.language.workspace import load_workspace
from grpo_dsl.plan import Plan, PlanError, compile, load_plan

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "programs"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plans"
UPDATE = os.environ.get("GRPO_UPDATE_GOLDEN") == "1"


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def rows(count: int, prefix: str = "Problem") -> str:
    return "".join(json.dumps({"problem": f"{prefix} {i}: what is {i} + {i}?", "answer": str(2 * i)}) + "\n" for i in range(count))


MINIMAL = """
    grpo 1

    model m { name = "small" }
    dataset d { source = "data/train.jsonl" }
    task t {
      model  = m
      prompt = "{{ problem }}"
    }
    reward r = exact(strip(output), answer)
    learn l {
      task       = t
      data       = d
      reward     = r
      group_size = 4
    }
"""


def minimal(folder: Path, program: str = MINIMAL) -> Path:
    write(folder, {"main.grpo": program, "data/train.jsonl": rows(10)})
    return folder / "main.grpo"


# ------------------------------------------------------------------ golden plans


def program_files() -> list[Path]:
    return sorted(PROGRAMS.glob("*.grpo"))


@pytest.mark.parametrize("program", program_files(), ids=lambda p: p.name)
def test_plan_of_program_matches_its_golden_file(program: Path) -> None:
    text = load_plan(program).to_json()
    golden = GOLDEN / f"{program.stem}.json"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden plan for {program.name}; run with GRPO_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")
    assert Plan.from_json(text).to_json() == text


def test_every_program_has_a_golden_plan_and_every_golden_plan_a_program() -> None:
    programs = {path.stem for path in program_files()}
    assert "math" in programs, "programs/math.grpo is the paper's setup"
    if UPDATE:
        for stale in set(p.stem for p in GOLDEN.glob("*.json")) - programs:
            (GOLDEN / f"{stale}.json").unlink()
    assert {path.stem for path in GOLDEN.glob("*.json")} == programs


# --------------------------------------------------------------- the document


class TestPlanDocument:
    def test_round_trip_keeps_bytes_and_hash(self, tmp_path: Path) -> None:
        plan = load_plan(minimal(tmp_path))
        again = Plan.from_json(plan.to_json())
        assert again == plan
        assert again.to_json() == plan.to_json()
        assert again.sha256 == plan.sha256
        assert len(plan.sha256) == 64

    def test_canonical_text(self, tmp_path: Path) -> None:
        text = load_plan(minimal(tmp_path)).to_json()
        data = json.loads(text)
        assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        assert data["schema"] == "grpo-plan/1"
        assert data["compiler"] == __import__("grpo_dsl").__version__

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda d: d.pop("models"), "models"),
            (lambda d: d.update(extra=1), "extra"),
            (lambda d: d.update(schema="grpo-plan/2"), "schema"),
            (lambda d: d["learns"]["l"].update(group_size=1), "group_size"),
            (lambda d: d["models"]["m"].update(api_key={"env": "KEY"}), "api_key"),
            (lambda d: d["rewards"]["r"]["expression"].update(node="lambda"), "rewards"),
            (lambda d: d["datasets"]["d"].update(sha256="not a hash"), "sha256"),
        ],
    )
    def test_an_invalid_plan_is_refused_when_read(self, tmp_path: Path, change: Any, message: str) -> None:
        data = json.loads(load_plan(minimal(tmp_path)).to_json())
        change(data)
        with pytest.raises(PlanError, match=message):
            Plan.from_json(json.dumps(data))

    def test_text_that_is_not_json_is_refused(self) -> None:
        with pytest.raises(PlanError, match="must be JSON: line 1"):
            Plan.from_json("{not json")

    def test_a_plan_cannot_be_made_invalid_in_memory(self, tmp_path: Path) -> None:
        data = json.loads(load_plan(minimal(tmp_path)).to_json())
        del data["learns"]["l"]["estimate"]
        with pytest.raises(PlanError, match="estimate"):
            Plan(data)


# ------------------------------------------------------------------- defaults


class TestDefaults:
    def test_every_default_of_the_attribute_table_is_filled_in_and_listed(self, tmp_path: Path) -> None:
        data = load_plan(minimal(tmp_path)).data
        sections = {"model": ("models", "m"), "dataset": ("datasets", "d"), "task": ("tasks", "t"), "learn": ("learns", "l")}
        for kind, (section, name) in sections.items():
            values = data[section][name]
            for attribute, default in defaults(kind).items():
                if (kind, attribute) in {("learn", "learner"), ("learn", "policy")}:
                    continue
                expected = default
                assert values[attribute] == expected, f"{section}.{name}.{attribute}"
                listed = f"{section}.{name}.{attribute}" in data["defaults_filled"]
                filled = expected is not None and not (isinstance(expected, dict) and all(v is None for v in expected.values()))
                assert listed == filled, f"{section}.{name}.{attribute}"

    def test_derived_defaults(self, tmp_path: Path) -> None:
        data = load_plan(minimal(tmp_path)).data
        learn = data["learns"]["l"]
        assert learn["learner"] == "m"
        assert learn["policy"] == defaults("policy")
        assert {"learns.l.learner", "learns.l.policy"} <= set(data["defaults_filled"])

    def test_written_attributes_are_not_listed_as_defaults(self, tmp_path: Path) -> None:
        program = MINIMAL.replace('name = "small"', 'name = "small"\n  timeout = 30  price { input = 1 }')
        data = load_plan(minimal(tmp_path, program)).data
        assert data["models"]["m"]["timeout"] == 30.0
        assert data["models"]["m"]["price"] == {"input": 1.0, "output": 0.0, "batch_discount": 0.5}
        assert "models.m.timeout" not in data["defaults_filled"]
        assert "models.m.price" not in data["defaults_filled"]
        assert "models.m.price.output" in data["defaults_filled"]
        assert "models.m.price.batch_discount" in data["defaults_filled"]

    def test_every_kind_and_attribute_of_the_table_reaches_the_plan(self, tmp_path: Path) -> None:
        data = load_plan(minimal(tmp_path)).data
        for kind, section, name in (("model", "models", "m"), ("task", "tasks", "t"), ("learn", "learns", "l")):
            assert {spec.name for spec in SPECS[kind]} <= set(data[section][name])


# ------------------------------------------------------------- declarations


FULL = """
    grpo 1
    import "shared/models.grpo"

    dataset train {
      source = "data/train.jsonl"
      fields { question = "problem" }
      limit  = 7
    }
    dataset held {
      source = "data/held.jsonl"
      fields { question = "problem" }
    }
    task solve {
      model       = fast
      system      = "Be brief."
      prompt      = "{{ question }} ({{ answer | length }} digits)"
      experiences = user
      tools       = [python]
    }
    reward correct = math_equal(boxed(output), answer)
    reward concise = if length(output) < 400 then 0.9 * correct + 0.1 else -correct
    reward scored = python("rewards.py:score")
    reward judged { judge = fast  rubric = "Is {{ question }} answered?" }
    policy careful {
      ops   = [add, add, delete]
      style = "imperative"
      rule  = python("rules.py:apply")
    }
    learn lessons {
      task       = solve
      data       = train
      reward     = concise
      group_size = 3
      batch_size = 3
      epochs     = 2
      policy     = careful
      validate   = held
      budget { usd = 2.5  calls = 900 }
      init       = "prompts/solve@^1.0"
    }
    learn judged_run {
      task       = solve
      data       = train
      reward     = judged
      group_size = 2
      learner    = slow
      summarize  = false
    }
    evaluate test {
      task    = solve
      data    = held
      samples = 4
      metrics = [mean, pass@4, mean@2]
      compare = [none, lessons, "prompts/solve@^1.0"]
    }
    evaluate scored_test {
      task   = solve
      data   = held
      reward = scored
    }
    emit out {
      library = lessons
      path    = "../out/prompts"
      formats = [json, markdown]
      version = "1.2.0"
    }
"""

SHARED = """
    grpo 1

    model fast {
      name     = env("FAST_MODEL", "tiny")
      base_url = env("FAST_URL")
      api_key  = env("FAST_KEY")
      price { input = 0.5  output = 1.5 }
    }
    model slow {
      name = "big"
      gguf = "../weights/big.gguf"
    }
"""


@pytest.fixture
def full(tmp_path: Path) -> Path:
    write(
        tmp_path / "project",
        {
            "main.grpo": FULL,
            "shared/models.grpo": SHARED,
            "data/train.jsonl": rows(10),
            "data/held.jsonl": rows(5, "Held"),
            "rewards.py": "def score(output, row):\n    return 1.0\n",
            "rules.py": "def apply(library, ops, policy, context):\n    return library\n",
        },
    )
    return tmp_path / "project" / "main.grpo"


class TestDeclarations:
    def test_paths_are_relative_to_the_main_file_folder(self, full: Path) -> None:
        data = load_plan(full).data
        assert data["datasets"]["train"]["source"] == "data/train.jsonl"
        assert data["models"]["slow"]["gguf"] == "weights/big.gguf"
        assert data["emits"]["out"]["path"] == "../out/prompts"
        assert data["rewards"]["scored"]["path"] == "rewards.py"
        assert data["policies"]["careful"]["rule"]["path"] == "rules.py"
        assert set(data["sources"]) == {"main.grpo", "shared/models.grpo"}

    def test_paths_written_in_an_imported_file_are_relative_to_it(self, tmp_path: Path) -> None:
        write(
            tmp_path,
            {
                "main.grpo": MINIMAL.replace('dataset d { source = "data/train.jsonl" }', "").replace(
                    "grpo 1", 'grpo 1\n    import "lib/data.grpo"'
                ),
                "lib/data.grpo": 'grpo 1\n\ndataset d { source = "rows/train.jsonl" }\n',
                "lib/rows/train.jsonl": rows(3),
            },
        )
        data = load_plan(tmp_path / "main.grpo").data
        assert data["datasets"]["d"]["source"] == "lib/rows/train.jsonl"
        assert data["learns"]["l"]["schedule"]["rows"] == 3
        assert set(data["sources"]) == {"main.grpo", "lib/data.grpo"}

    def test_no_absolute_path_of_the_machine_is_in_the_plan(self, full: Path) -> None:
        text = load_plan(full).to_json()
        assert str(full.parent) not in text
        assert str(Path.cwd()) not in text

    def test_hashes_of_sources_data_and_python_files(self, full: Path) -> None:
        import hashlib

        def sha(path: Path) -> str:
            return hashlib.sha256(path.read_bytes()).hexdigest()

        data = load_plan(full).data
        folder = full.parent
        assert data["sources"]["main.grpo"] == sha(full)
        assert data["sources"]["shared/models.grpo"] == sha(folder / "shared/models.grpo")
        assert data["datasets"]["train"]["sha256"] == sha(folder / "data/train.jsonl")
        assert data["rewards"]["scored"]["sha256"] == sha(folder / "rewards.py")
        assert data["policies"]["careful"]["rule"]["sha256"] == sha(folder / "rules.py")

    def test_a_changed_data_file_changes_the_plan(self, full: Path) -> None:
        before = load_plan(full)
        with (full.parent / "data/held.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps({"problem": "one more", "answer": "1"}) + "\n")
        assert load_plan(full).sha256 != before.sha256

    def test_env_values_stay_references(self, full: Path) -> None:
        model = load_plan(full).data["models"]["fast"]
        assert model["name"] == {"env": "FAST_MODEL", "default": "tiny"}
        assert model["base_url"] == {"env": "FAST_URL", "default": None}
        assert model["api_key"] == {"env": "FAST_KEY", "default": None}

    def test_references_and_values(self, full: Path) -> None:
        data = load_plan(full).data
        lessons = data["learns"]["lessons"]
        assert lessons["policy"] == data["policies"]["careful"]
        assert data["policies"]["careful"]["ops"] == ["add", "delete"]
        assert lessons["budget"] == {"usd": 2.5, "tokens": None, "calls": 900}
        assert lessons["init"] == "prompts/solve@^1.0"
        assert data["learns"]["judged_run"]["learner"] == "slow"
        assert data["evaluates"]["test"]["reward"] == "concise"
        assert data["evaluates"]["test"]["metrics"] == ["mean", "pass@4", "mean@2"]
        assert data["evaluates"]["test"]["compare"] == ["none", "lessons", "prompts/solve@^1.0"]
        assert data["emits"]["out"] == {
            "library": "lessons",
            "path": "../out/prompts",
            "formats": ["json", "markdown"],
            "name": "out",
            "version": "1.2.0",
        }
        task = data["tasks"]["solve"]
        assert task["variables"] == ["answer", "question"]
        assert task["experiences"] == "user"
        assert data["datasets"]["train"]["fields"] == {"question": "problem"}

    def test_reward_kinds(self, full: Path) -> None:
        rewards = load_plan(full).data["rewards"]
        assert rewards["correct"] == {
            "kind": "expression",
            "reads": ["answer", "output"],
            "expression": {
                "node": "call",
                "function": "math_equal",
                "args": [
                    {"node": "call", "function": "boxed", "args": [{"node": "name", "name": "output"}]},
                    {"node": "name", "name": "answer"},
                ],
            },
        }
        assert rewards["concise"]["expression"]["node"] == "if"
        assert rewards["concise"]["expression"]["else"] == {"node": "unary", "op": "-", "operand": {"node": "name", "name": "correct"}}
        assert rewards["concise"]["reads"] == ["correct", "output"]
        assert rewards["judged"] == {"kind": "judge", "model": "fast", "rubric": "Is {{ question }} answered?"}
        assert rewards["scored"]["kind"] == "python" and rewards["scored"]["function"] == "score"

    def test_the_documented_expression_tree(self, tmp_path: Path) -> None:
        program = MINIMAL.replace(
            "reward r = exact(strip(output), answer)",
            "reward correct = exact(output, answer)\nreward r = 0.9 * correct + 0.1 * (length(output) < 4000)",
        )
        expression = load_plan(minimal(tmp_path, program)).data["rewards"]["r"]["expression"]
        documented = re.search(r"is\n\n```json\n(.*?)```", (ROOT / "docs/plan.md").read_text(encoding="utf-8"), re.S)
        assert documented is not None
        assert expression == json.loads(documented.group(1))


# ---------------------------------------------------------------- determinism


class TestDeterminism:
    def test_two_compiles_are_byte_identical(self, full: Path) -> None:
        assert load_plan(full).to_json() == load_plan(full).to_json()

    def test_another_working_directory_gives_the_same_bytes(self, full: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        absolute = load_plan(full).to_json()
        monkeypatch.chdir(full.parent)
        here = load_plan("main.grpo").to_json()
        monkeypatch.chdir(full.parent / "shared")
        above = load_plan("../main.grpo").to_json()
        monkeypatch.chdir(full.parent.parent)
        workspace, problems = load_workspace("project/main.grpo")
        assert workspace is not None and not problems
        assert absolute == here == above == compile(workspace).to_json()


# ---------------------------------------------------------------------- errors


class TestErrors:
    def test_a_program_with_errors_is_never_planned(self, tmp_path: Path) -> None:
        path = minimal(tmp_path, MINIMAL.replace("model  = m", "model  = mm").replace("group_size = 4", "group_size = 1"))
        with pytest.raises(ProgramError) as raised:
            load_plan(path)
        assert {d.code for d in raised.value.diagnostics} >= {"E0203", "E0501"}

    def test_python_inside_an_expression_is_refused(self, tmp_path: Path) -> None:
        write(tmp_path, {"rewards.py": "def score(output, row):\n    return 1\n"})
        path = minimal(tmp_path, MINIMAL.replace("exact(strip(output), answer)", '0.5 * python("rewards.py:score")'))
        with pytest.raises(ProgramError) as raised:
            load_plan(path)
        assert [d.code for d in raised.value.diagnostics] == ["E0106"]
        assert "whole reward" in str(raised.value)

    def test_a_malformed_row_after_the_first_hundred_is_a_diagnostic(self, tmp_path: Path) -> None:
        path = minimal(tmp_path)
        (tmp_path / "data/train.jsonl").write_text(rows(150) + "{broken\n", encoding="utf-8")
        with pytest.raises(ProgramError) as raised:
            load_plan(path)
        assert [d.code for d in raised.value.diagnostics] == ["E0403"]
        assert "line 151" in raised.value.diagnostics[0].message


# --------------------------------------------------------------------- secrets


def test_resolve_env() -> None:
    assert resolve_env({"env": "X", "default": "d"}, {"X": "v"}) == "v"
    assert resolve_env({"env": "X", "default": "d"}, {}) == "d"
    assert resolve_env({"env": "X", "default": None}, {}) is None
    assert resolve_env(3) == 3


def test_a_secret_in_the_environment_never_reaches_any_output(
    full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-secret-4f9a1c7e0b"
    for variable in ("FAST_KEY", "FAST_URL", "FAST_MODEL"):
        monkeypatch.setenv(variable, secret)
    outputs = [load_plan(full).to_json()]
    target = tmp_path / "plan.json"
    for argv in (["plan", str(full)], ["plan", str(full), "--explain"], ["plan", str(full), "-o", str(target), "--explain"]):
        assert main(argv) == 0
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    outputs.append(target.read_text(encoding="utf-8"))
    assert outputs[0] and outputs[1] and outputs[3]
    assert not [text for text in outputs if secret in text]
    assert 'env("FAST_KEY")' in outputs[3]


# ------------------------------------------------------------------- the CLI


class TestCommand:
    def test_json_to_stdout(self, full: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["plan", str(full), "--format", "json"]) == 0
        assert capsys.readouterr().out == load_plan(full).to_json()

    def test_the_human_view_is_the_default(self, full: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["plan", str(full)]) == 0
        default = capsys.readouterr().out
        assert main(["plan", str(full), "--explain"]) == 0
        assert default == capsys.readouterr().out
        assert default.startswith("plan of ") and "estimate" in default

    def test_output_file(self, full: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "plan.json"
        assert main(["plan", str(full), "-o", str(target)]) == 0
        assert capsys.readouterr().out == ""
        assert target.read_text(encoding="utf-8") == load_plan(full).to_json()

    def test_explain_lists_steps_estimate_and_defaults(self, full: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["plan", str(full), "--explain"]) == 0
        out = capsys.readouterr().out
        sections = {block.split(":")[0]: block for block in out.split("\n\n")}
        steps = re.findall(r"^    \d+\. (\w+)", sections["learn lessons"], re.M)
        assert steps == ["rollout", "reward", "filter", "summary", "advantage", "consolidate", "apply", "validate", "checkpoint"]
        judged = sections["learn judged_run"]
        assert "judge calls to `fast`" in judged
        assert re.findall(r"^    \d+\. (\w+)", judged, re.M) == ["rollout", "reward", "filter", "advantage", "consolidate", "apply", "checkpoint"]
        assert "evaluate test" in sections and "emit out" in sections
        assert "defaults filled in:" in out
        for dotted in load_plan(full).data["defaults_filled"]:
            assert f"  {dotted} = " in out

    def test_explain_prices_every_stage_for_ordinary_calls_and_batch_jobs(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        program = MINIMAL.replace(
            'model m { name = "small" }',
            'model m {\n  name = "small"\n  batch = true\n  cache = false\n  price { input = 2  output = 4  batch_discount = 0.25 }\n}',
        )
        path = minimal(tmp_path, program)
        data = load_plan(path).data
        assert (data["models"]["m"]["batch"], data["models"]["m"]["cache"]) == (True, False)
        estimate = data["learns"]["l"]["estimate"]
        for row in [*estimate["stages"], estimate["total"]]:
            assert row["batch_usd"] == pytest.approx(0.75 * row["usd"], abs=1e-6)

        assert main(["plan", str(path), "--explain"]) == 0
        out = capsys.readouterr().out

        assert "25 % off in a batch job; batch jobs, one per stage; answers not shared between runs" in out
        header = next(line for line in out.splitlines() if "prompt tokens" in line)
        assert header.split()[-3:] == ["USD", "batch", "USD"]
        total = next(line for line in out.splitlines() if line.strip().startswith("total"))
        assert [float(v) for v in total.split()[-2:]] == pytest.approx([estimate["total"]["usd"], estimate["total"]["batch_usd"]], abs=1e-4)

    def test_a_cache_folder_is_relative_to_the_program(self, tmp_path: Path) -> None:
        program = MINIMAL.replace('model m { name = "small" }', 'model m {\n  name = "small"\n  cache = "caches/m"\n}')
        model = load_plan(minimal(tmp_path, program)).data["models"]["m"]
        assert (model["cache"], model["batch"]) == ("caches/m", False)

    def test_errors_exit_1_with_diagnostics_on_stderr(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = minimal(tmp_path, MINIMAL.replace("model  = m", "model  = mm"))
        assert main(["plan", str(path)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "error[E0203]: unknown model `mm`" in captured.err
        assert main(["plan", str(path), "--format", "json"]) == 1
        assert "E0203" in [d["code"] for d in json.loads(capsys.readouterr().err)]

    def test_syntax_errors_exit_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = minimal(tmp_path, "grpo 1\nmodel m {\n")
        assert main(["plan", str(path)]) == 1
        assert "error[E0001]" in capsys.readouterr().err

    def test_usage_errors_exit_2(self, tmp_path: Path, full: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["plan", str(tmp_path / "missing.grpo")]) == 2
        assert main(["plan", str(full), "-o", str(tmp_path / "no" / "such" / "plan.json")]) == 2
        assert main(["plan"]) == 2
        assert "no such" in capsys.readouterr().err


# ------------------------------------------------------ the paper's setup, by hand


def explained_estimate(out: str, section: str) -> dict[str, tuple[bool, int, int]]:
    """The estimate table of one section of `grpo plan --explain`: stage -> (upper bound, calls, max calls),
    the bound columns that follow the expected calls, tokens and USD."""
    block = next(b for b in out.split("\n\n") if b.startswith(section))
    table = block.split("estimate")[1]
    found = re.findall(r"^    (\w+)\s+[\d,]+\s+[\d,]+\s+[\d.]+\s+(<=)?\s*([\d,]+)\s+([\d,]+)\s", table, re.M)
    return {stage: (bound == "<=", int(calls.replace(",", "")), int(most.replace(",", ""))) for stage, bound, calls, most in found}


def test_the_estimate_of_the_papers_setup_matches_a_hand_count(capsys: pytest.CaptureFixture[str]) -> None:
    """programs/math.grpo: 100 problems, 3 epochs, batch 100, G = 5, at most 2 operations
    a group, a gate on 30 held-out problems, python tool with 8 turns; evaluation of
    30 problems x 32 samples, bare task against the learned library."""
    assert main(["plan", str(PROGRAMS / "math.grpo"), "--explain"]) == 0
    out = capsys.readouterr().out
    learn = explained_estimate(out, "learn math_lessons")
    steps = 3 * 1  # epochs x ceil(100 / 100)
    rollouts = 100 * 5 * steps  # G·B per step
    assert learn["rollout"] == (False, rollouts, rollouts * 8) == (False, 1500, 12000)
    assert learn["summary"] == (True, 1500, 1500)  # <= G per kept group, every group kept
    assert learn["advantage"] == (True, 300, 300)  # <= one per kept group: 100 x 3
    assert learn["consolidate"] == (True, 21, 21)  # ceil(100 groups x 2 proposals / 32) = 7 per step
    assert learn["validate"] == (True, 900, 7200)  # 2 libraries x 5 answers x 30 problems x 3 steps
    assert learn["total"] == (True, 1500 + 1500 + 300 + 21 + 900, 12000 + 1500 + 300 + 21 + 7200)
    evaluation = explained_estimate(out, "evaluate heldout")
    assert evaluation["evaluate"] == (False, 30 * 32 * 2, 30 * 32 * 2 * 8)
    assert "3 epochs x 1 step of up to 100 questions = 3 steps; group size G = 5" in out
