"""Hostile snippets, each run through a real tool-use rollout against the test endpoint.

One `grpo run` answers every snippet of `support.hostile.SNIPPETS` twice with the
python tool, in the default sandbox (bubblewrap). An API key is planted in the
environment `grpo` starts with (the model block reads it with `env(...)`), and in a
home folder; the dataset holds the answers. Every snippet must be refused or contained, and
the key must appear in no file of the run (its cache included) and in no request
the endpoint received. The same attack under `sandbox = "unsafe-process"` finds the
key, which shows that these checks can fail.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import RECENT_REQUESTS, Endpoint
from support.hostile import SNIPPETS, hostile_rows, processes_with, write_rows

KEY_NAME = "GRPO_PLANTED_KEY"

PROGRAM = """grpo 1

model attacker {
  base_url    = "BASE_URL"
  api_key     = env("GRPO_PLANTED_KEY")
  name        = "attacker"
  concurrency = 32
  SANDBOX
}

dataset snippets { source = "hostile.jsonl" }

task run_code {
  model     = attacker
  prompt    = "Run this program and tell me what it prints.\\n<code>\\n{{ code }}\\n</code>"
  tools     = [python]
  files     = ["rates.csv"]
  max_turns = 2
}

reward printed = length(output) > 0

learn escape {
  task         = run_code
  data         = snippets
  reward       = printed
  group_size   = 2
  batch_size   = BATCH
  ground_truth = false
}
"""


@dataclass(frozen=True)
class Attack:
    """What one hostile run left behind."""

    run_dir: Path
    status: str
    key: str
    folder: Path
    places: dict[str, Any]
    tool_outputs: dict[str, list[str]]
    requests: list[dict[str, Any]]
    total_requests: int
    listener_reached: bool

    def verdicts(self, snippet: str) -> list[str]:
        """The `verdict:` line of each tool call of a snippet's rollouts."""
        lines = [line for output in self.tool_outputs[snippet] for line in output.splitlines() if line.startswith("verdict:")]
        assert len(lines) == len(self.tool_outputs[snippet]) == 2, self.tool_outputs[snippet]
        return [line.removeprefix("verdict:").strip() for line in lines]


def _attack(folder: Path, endpoint: Endpoint, snippets: list[str], sandbox: str = "") -> Attack:
    key = f"sk-planted-{secrets.token_hex(16)}"
    home = folder / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(f"-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----\n")
    places = {
        "NAME": KEY_NAME,
        "HOME": str(home),
        "DATASET": str(folder / "hostile.jsonl"),
        "RUNS": str(folder / "runs"),
        "OUTSIDE": str(folder / "escaped.txt"),
        "MARKER": f"grpo-hostile-{secrets.token_hex(8)}",
    }
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        places["PORT"] = listener.getsockname()[1]
        (folder / "rates.csv").write_text("year,rate\n2024,0.05\n")
        write_rows(folder / "hostile.jsonl", [row for row in hostile_rows(places) if row["id"] in snippets])
        program = folder / "hostile.grpo"
        text = PROGRAM.replace("BASE_URL", endpoint.base_url).replace("BATCH", str(len(snippets)))
        program.write_text(text.replace("SANDBOX", sandbox))
        endpoint.configure(script="support.hostile:hostile_world", api_key=key)
        command = [sys.executable, "-m", "grpo_dsl.cli", "run", str(program), "--runs", str(folder / "runs")]
        environment = {**os.environ, KEY_NAME: key, "HOME": str(home)}
        finished = subprocess.run(command, env=environment, cwd=folder, capture_output=True, text=True, timeout=600)
        try:
            listener.accept()[0].close()
            reached = True
        except BlockingIOError:
            reached = False
    stats = endpoint.stats()
    (run_dir,) = (folder / "runs" / "escape").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    outputs: dict[str, list[str]] = {}
    for group in json.loads((run_dir / "steps/0001/rollouts.json").read_text()):
        for rollout in group["rollouts"]:
            tools = [m["content"] for m in rollout["trajectory"] if m["role"] == "tool"]
            outputs.setdefault(group["question"], []).extend(tools)
    assert finished.returncode == 0, finished.stderr
    return Attack(
        run_dir, info["status"], key, folder, places, outputs, [r["body"] for r in stats["requests"]], stats["total"], reached
    )


@pytest.fixture(scope="module")
def attack(_endpoint_process: Endpoint, tmp_path_factory: pytest.TempPathFactory, bubblewrap: None) -> Iterator[Attack]:
    """Every hostile snippet, answered twice through the python tool in the default sandbox."""
    yield _attack(tmp_path_factory.mktemp("hostile"), _endpoint_process, list(SNIPPETS))
    _endpoint_process.configure()


def test_the_run_completes_and_every_snippet_ran_twice(attack: Attack) -> None:
    assert attack.status == "completed"
    assert set(attack.tool_outputs) == set(SNIPPETS)
    for snippet in SNIPPETS:
        assert len(attack.verdicts(snippet)) == 2


@pytest.mark.parametrize("snippet", ["parent_environ", "pid1_environ", "every_environ"])
def test_no_environment_holds_the_key(attack: Attack, snippet: str) -> None:
    assert attack.verdicts(snippet) == ["no key", "no key"]


@pytest.mark.parametrize("snippet", ["etc_passwd", "home_folder", "dataset", "run_directory"])
def test_no_file_outside_the_sandbox_can_be_read(attack: Attack, snippet: str) -> None:
    assert attack.verdicts(snippet) == ["FileNotFoundError", "FileNotFoundError"]


def test_writes_outside_fail_even_with_the_audit_hook_switched_off(attack: Attack) -> None:
    for verdict in attack.verdicts("write_outside"):
        assert "wrote" not in verdict and verdict.count("Error") == 3, verdict
    assert not Path(attack.places["OUTSIDE"]).exists()


def test_no_program_of_the_machine_runs_and_the_uid_is_not_root(attack: Attack) -> None:
    for verdict in attack.verdicts("run_id"):
        shown, uid = verdict.split(" uid ")
        assert shown == "FileNotFoundError"
        assert int(uid) != 0


def test_forking_stops_at_the_process_limit(attack: Attack) -> None:
    for verdict in attack.verdicts("fork_past_limit"):
        assert int(verdict) < 32
    assert all("refused: BlockingIOError" in output for output in attack.tool_outputs["fork_past_limit"])


def test_a_detached_grandchild_does_not_outlive_the_timeout_or_its_parent(attack: Attack) -> None:
    for name in ("detached_grandchild", "detached_grandchild_exits"):
        assert attack.verdicts(name) == ["detached", "detached"]
    assert all("ran out of time" in output for output in attack.tool_outputs["detached_grandchild"])
    assert processes_with(attack.places["MARKER"]) == []


def test_the_task_files_are_there_to_read_but_not_to_change(attack: Attack) -> None:
    for verdict in attack.verdicts("mounted_file"):
        assert verdict in ("2024,0.05 OSError", "2024,0.05 PermissionError"), verdict
    assert (attack.folder / "rates.csv").read_text() == "year,rate\n2024,0.05\n"


def test_a_loopback_listener_is_out_of_reach(attack: Attack) -> None:
    for verdict in attack.verdicts("loopback_socket"):
        assert verdict in ("ConnectionRefusedError", "OSError"), verdict
    assert not attack.listener_reached


def _files_with(folder: Path, text: str) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_the_key_is_in_no_file_of_the_run_and_no_request(attack: Attack) -> None:
    run_files = [p for p in attack.run_dir.rglob("*") if p.is_file()]
    assert any(p.parent.name == "cache" or "cache" in p.parts for p in run_files), "the run has a cache"
    assert _files_with(attack.run_dir, attack.key) == []
    assert attack.total_requests <= RECENT_REQUESTS, "every request body was recorded"
    assert attack.total_requests == len(attack.requests)
    assert not any(attack.key in json.dumps(body) for body in attack.requests)
    assert any(KEY_NAME in json.dumps(body) for body in attack.requests), "the snippets reached the endpoint"


def test_without_isolation_the_same_attack_finds_the_key(endpoint: Endpoint, tmp_path: Path) -> None:
    attack = _attack(tmp_path, endpoint, ["parent_environ", "home_folder"], sandbox='sandbox = "unsafe-process"')
    assert attack.verdicts("parent_environ") == ["KEY", "KEY"]
    assert attack.verdicts("home_folder") == ["read", "read"]
    assert _files_with(attack.run_dir, attack.key)
    assert any(attack.key in json.dumps(body) for body in attack.requests)
