"""grpo-dsl (lessons + demos) against DSPy's SIMBA on the quick start's task, one model server.

    python3 -m venv /tmp/venv-dspy
    /tmp/venv-dspy/bin/pip install -r benchmarks/requirements-dspy.txt
    .venv/bin/python benchmarks/bench_demos_vs_dspy.py --dspy-python /tmp/venv-dspy/bin/python \
        [--samples 4] [--out results.json] [--work DIR] [--skip-grpo | --skip-dspy]

What runs: one llama.cpp server with the embedded local model (`LocalServer`,
`model_path()`), and in front of it a counting HTTP proxy on 127.0.0.1 that forwards
`/LABEL/v1/...` to the server's `/v1/...` and counts, per label, the requests that
reached the server (and their tokens). The labels are `grpo-learn`, `grpo-eval`,
`dspy-learn` and `dspy-eval`, so "learning calls" are the calls the model really
answered while a method learned; nothing is cached (a fresh work folder, runs folder
and `GRPO_CACHE_DIR`, and `dspy.LM(..., cache=False)`).

- grpo-dsl: `programs/` is copied into the work folder and `quickstart.grpo` gets
  `base_url` (the proxy), `api_key = "local"` and `structured = json_object` (the
  llama server refuses `json_schema`); then `grpo run` (learn: G = 4, batch 20, one
  epoch, gate on `validate`, `demos = 2`) and `grpo eval --format json` (no library
  against the learned one).
- DSPy runs in its own virtualenv (`--dspy-python`), as this same file with
  `--dspy-worker CONFIG`, so grpo-dsl's environment needs no DSPy. The program is a
  `dspy.Predict` of the signature `date -> answer` whose instructions are the quick
  start prompt without its `{{ date }}`, on the same model with the task's temperature,
  top_p and max_tokens; the metric is the quick start's reward, `answer in output`.
  `dspy.SIMBA` keeps its defaults (max_demos 4, sampling temperatures 0.2) except
  `bsize`, `num_candidates` and `max_steps`, set to grpo's batch (20), group size (4)
  and steps (2) so that both see the 40 training questions once with 4 answers each;
  SIMBA's defaults (32, 6, 8) would make about 3,600 calls. SIMBA samples its
  trajectories at temperature 1.0 (its own design). `num_threads = 1`: the
  server answers one request at a time (the quick start's `concurrency = 1`). SIMBA's
  `prompt_model` (which writes its rules) is the same model with grpo's learner
  sampling (temperature 0, up to 1000 tokens), not the task's 32-token limit. SIMBA
  takes no validation set. `dspy.LM(engine="litellm")`: DSPy's default engine sends
  `max_completion_tokens`, which llama-cpp-python's server ignores; the proxy records
  the sampling parameters each label sent.
- Evaluation, both methods: the 30 held-out questions x `--samples` answers with and
  without what was learned, the same per-sample seeds on both sides (DSPy: `seed`
  and `rollout_id` per sample, the seeds grpo's evaluation uses). DSPy's ChatAdapter
  asks again through its JSONAdapter when it cannot parse a reply (the extra calls
  are counted); an answer neither can parse scores 0, as in DSPy's own evaluation.

Statistics: the per-question mean rewards of each side go through grpo-dsl's
`bootstrap_ci` and `paired_difference` (seed 0, as `grpo eval`), the same for both
methods. The table gives learning calls and tokens, the held-out mean with its 95 %
interval, the paired gain over the same method's no-library prompt with its 95 %
interval, and the wall time of learning and of the evaluation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Only the standard library at module level: `--dspy-worker` runs this file in the DSPy
# virtualenv, which has neither grpo-dsl nor aiohttp.

REPO = Path(__file__).resolve().parents[1]
PROGRAM = "quickstart.grpo"
LEARN = "date_format"
EVALUATE = "date_format_heldout"
STAT_SEED = 0
LABELS = ("grpo-learn", "grpo-eval", "dspy-learn", "dspy-eval")


# ---------------------------------------------------------------------- counting proxy


@dataclass
class Traffic:
    """What one label sent through the proxy: requests that got an answer, tokens, sampling."""

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sampling: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "sampling": dict(self.sampling),
        }


class CountingProxy:
    """An aiohttp server on 127.0.0.1 (its own thread and loop) that forwards `/LABEL/v1/...`
    to `upstream` + `/v1/...` and counts, per label, the requests the upstream answered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.traffic: dict[str, Traffic] = defaultdict(Traffic)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def base_url(self, label: str) -> str:
        return f"http://127.0.0.1:{self.port}/{label}/v1"

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def _serve(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, web

        async def start() -> web.AppRunner:
            self._session = ClientSession(timeout=ClientTimeout(total=None))
            app = web.Application(client_max_size=64 << 20)
            app.router.add_route("*", "/{label}/v1/{tail:.*}", self._forward)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return runner

        runner = self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.run_until_complete(self._session.close())

    async def _forward(self, request: Any) -> Any:
        from aiohttp import ClientError, web

        label, tail = request.match_info["label"], request.match_info["tail"]
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization", "accept")}
        traffic = self.traffic[label]
        try:
            async with self._session.request(request.method, f"{self.upstream}/v1/{tail}", data=body, headers=headers) as answer:
                payload = await answer.read()
                status, content_type = answer.status, answer.content_type
        except ClientError as error:
            traffic.errors += 1
            return web.Response(status=502, text=f"proxy: {error}")
        traffic.calls += 1
        _account(traffic, body, payload)
        return web.Response(body=payload, status=status, content_type=content_type)


def _account(traffic: Traffic, body: bytes, payload: bytes) -> None:
    """Add a completion's usage and its sampling parameters to `traffic`."""
    try:
        sent, usage = json.loads(body or b"{}"), json.loads(payload).get("usage") or {}
    except (ValueError, AttributeError):
        return
    traffic.prompt_tokens += usage.get("prompt_tokens", 0)
    traffic.completion_tokens += usage.get("completion_tokens", 0)
    if "messages" in sent:
        traffic.sampling[f"temperature={sent.get('temperature')} top_p={sent.get('top_p')} max_tokens={sent.get('max_tokens')}"] += 1


# ---------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Side:
    """One method's held-out result: per-question mean rewards without and with what it learned."""

    method: str
    label: str
    """The proxy labels are `LABEL-learn` and `LABEL-eval`."""
    none: dict[str, float]
    learned: dict[str, float]
    learn_seconds: float
    eval_seconds: float
    learned_summary: dict[str, Any]


def side_statistics(side: Side) -> dict[str, Any]:
    """Both sides' means with intervals and the paired gain, by grpo-dsl's statistics.

    The questions keep the data set's order, as in `grpo eval`: the bootstrap draws
    depend on it, and this order gives grpo's side exactly the numbers of its evaluation."""
    from grpo_dsl.evaluation.stats import bootstrap_ci, paired_difference

    questions = list(side.none)
    if sorted(side.learned) != sorted(questions):
        raise SystemExit(f"{side.method}: the two evaluations did not answer the same questions")
    none = [side.none[q] for q in questions]
    learned = [side.learned[q] for q in questions]
    gain = paired_difference(learned, none, seed=STAT_SEED)
    return {
        "questions": len(questions),
        "none": bootstrap_ci(none, seed=STAT_SEED).to_json(),
        "learned": bootstrap_ci(learned, seed=STAT_SEED).to_json(),
        "gain": gain.to_json(),
        "per_question": {"none": none, "learned": learned, "questions": questions},
    }


# ---------------------------------------------------------------------- grpo-dsl


def proxied_program(text: str, base_url: str, samples: int) -> str:
    """The quick start pointed at the proxy, with `samples` per held-out question (and pass@`samples`);
    the rest unchanged."""
    model = re.compile(r"^(model local \{\n)", re.M)
    endpoint = f'  base_url   = "{base_url}"\n  api_key    = "local"\n  structured = json_object\n'
    text, found = model.subn(lambda m: m.group(1) + endpoint, text)
    text, counted = re.subn(r"^(\s*samples\s*=\s*)\d+", rf"\g<1>{samples}", text, flags=re.M)
    text = re.sub(r"pass@\d+", f"pass@{samples}", text)
    if found != 1 or counted != 1:
        raise SystemExit(f"{PROGRAM} no longer has one `model local` block and one `samples`: update this benchmark")
    return text


def run_grpo(proxy: CountingProxy, work: Path, samples: int) -> Side:
    """Learn and evaluate the quick start through the proxy, in a fresh copy of `programs/`."""
    folder = work / "grpo"
    shutil.copytree(REPO / "programs", folder / "programs", ignore=shutil.ignore_patterns("runs", "prompts", "__pycache__"))
    programs = folder / "programs"
    grpo = [str(Path(sys.executable).with_name("grpo"))]
    env = {**os.environ, "GRPO_CACHE_DIR": str(folder / "cache")}

    def grpo_call(label: str, *arguments: str) -> tuple[str, float]:
        program = programs / f"{label}.grpo"
        text = proxied_program((programs / PROGRAM).read_text(encoding="utf-8"), proxy.base_url(label), samples)
        program.write_text(text, encoding="utf-8")
        started = time.monotonic()
        command = [*grpo, *arguments, program.name, "--runs", str(folder / "runs")]
        done = subprocess.run(command, cwd=programs, env=env, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"grpo {arguments[0]} failed with status {done.returncode}; its run folder is under {folder / 'runs'}")
        return done.stdout, time.monotonic() - started

    _, learn_seconds = grpo_call("grpo-learn", "run")
    report, eval_seconds = grpo_call("grpo-eval", "eval", "--format", "json")
    document = json.loads(report)
    scores = {lib["name"]: {q["question_id"]: q["mean_reward"] for q in lib["per_question"]} for lib in document["libraries"]}
    (library_file,) = (folder / "runs" / LEARN).glob("*/library.json")
    library = json.loads(library_file.read_text(encoding="utf-8"))
    learned = {
        "lessons": [e["text"] for e in library["experiences"]],
        "demos": [f"{d['fields']} -> {d['answer']!r}" for d in library.get("demos", [])],
        "library": str(library_file),
    }
    return Side("grpo-dsl", "grpo", scores["none"], scores[LEARN], learn_seconds, eval_seconds, learned)


# ---------------------------------------------------------------------- DSPy


def dspy_config(proxy: CountingProxy, work: Path, samples: int, args: argparse.Namespace) -> dict[str, Any]:
    """What the DSPy worker needs, taken from the quick start's plan: model, sampling, prompt, data, seeds."""
    from grpo_dsl.clients.protocol import derive_seed
    from grpo_dsl.plan import load_plan
    from grpo_dsl.prompts.learner import LEARNER_MAX_TOKENS, LearnerPrompts

    plan = load_plan(REPO / "programs" / PROGRAM)
    learn, evaluate = plan.learn(LEARN), plan.evaluate(EVALUATE)
    task = plan.task(evaluate.task)

    def rows(dataset: str) -> list[dict[str, Any]]:
        source = REPO / "programs" / plan.dataset(dataset).source
        return [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]

    heldout = rows(evaluate.data)
    return {
        "model": plan.model(task.model).name,
        "learn_url": proxy.base_url("dspy-learn"),
        "eval_url": proxy.base_url("dspy-eval"),
        "sampling": {"temperature": task.temperature, "top_p": task.top_p, "max_tokens": task.max_tokens},
        "learner": {"temperature": LearnerPrompts.temperature, "max_tokens": max(LEARNER_MAX_TOKENS.values())},
        "instructions": re.sub(r"\s*\{\{\s*date\s*\}\}", "", task.prompt),
        "train": rows(learn.data),
        "heldout": heldout,
        "seeds": {row["id"]: [derive_seed(evaluate.seed, f"evaluate:{row['id']}", i) for i in range(samples)] for row in heldout},
        "simba": {"bsize": args.simba_bsize, "num_candidates": args.simba_candidates, "max_steps": args.simba_steps, "num_threads": 1},
        "compile_seed": learn.seed,
        "result": str(work / "dspy" / "result.json"),
    }


def run_dspy(proxy: CountingProxy, work: Path, samples: int, args: argparse.Namespace) -> Side:
    """Run the DSPy worker in `--dspy-python`'s environment and read its per-question rewards."""
    folder = work / "dspy"
    folder.mkdir()
    config = dspy_config(proxy, work, samples, args)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with open(folder / "worker.log", "w", encoding="utf-8") as log:
        command = [args.dspy_python, __file__, "--dspy-worker", str(folder / "config.json")]
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"the DSPy worker failed with status {done.returncode}; see {folder / 'worker.log'}")
    result = json.loads(Path(config["result"]).read_text(encoding="utf-8"))
    return Side("DSPy SIMBA", "dspy", result["none"], result["learned"], result["learn_seconds"], result["eval_seconds"], result["program"])


def dspy_worker(config_path: str) -> None:
    """In the DSPy virtualenv: compile with SIMBA, evaluate bare and compiled programs, write JSON."""
    import dspy  # type: ignore[import-not-found]

    config = json.loads(Path(config_path).read_text(encoding="utf-8"))

    def lm(url: str, sampling: Mapping[str, Any]) -> Any:
        # engine="litellm": DSPy's default engine sends `max_completion_tokens`, which the llama server ignores
        return dspy.LM(f"openai/{config['model']}", api_base=url, api_key="local", cache=False, engine="litellm", **sampling)

    class WriteDate(dspy.Signature):  # type: ignore[misc]
        date: str = dspy.InputField()
        answer: str = dspy.OutputField()

    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        return float(example.answer in (getattr(prediction, "answer", None) or ""))

    student = dspy.Predict(WriteDate.with_instructions(config["instructions"]))
    trainset = [dspy.Example(date=r["date"], answer=r["answer"]).with_inputs("date") for r in config["train"]]
    dspy.configure(lm=lm(config["learn_url"], config["sampling"]))
    simba = dspy.SIMBA(metric=metric, prompt_model=lm(config["learn_url"], config["learner"]), **config["simba"])
    started = time.monotonic()
    compiled = simba.compile(student, trainset=trainset, seed=config["compile_seed"])
    learn_seconds = time.monotonic() - started

    def heldout_means(program: Any) -> tuple[dict[str, float], int]:
        means, failures = {}, 0
        for row in config["heldout"]:
            rewards = []
            for index, seed in enumerate(config["seeds"][row["id"]]):
                try:
                    prediction = program(date=row["date"], config={"rollout_id": index, "seed": seed})
                except Exception as error:  # an answer the adapter cannot parse scores 0
                    print(f"{row['id']} sample {index}: {type(error).__name__}: {error}", file=sys.stderr)
                    prediction, failures = None, failures + 1
                rewards.append(metric(dspy.Example(answer=row["answer"]), prediction))
            means[row["id"]] = sum(rewards) / len(rewards)
        return means, failures

    started = time.monotonic()
    with dspy.context(lm=lm(config["eval_url"], config["sampling"])):
        none, none_failures = heldout_means(student)
        learned, learned_failures = heldout_means(compiled)
    eval_seconds = time.monotonic() - started
    program = {
        "instructions": compiled.signature.instructions,
        "demos": [f"{demo.get('date')!r} -> {demo.get('answer')!r}" for demo in compiled.demos],
        "unparsed_answers": {"none": none_failures, "learned": learned_failures},
        "simba": config["simba"],
    }
    result = {"none": none, "learned": learned, "learn_seconds": learn_seconds, "eval_seconds": eval_seconds, "program": program}
    Path(config["result"]).write_text(json.dumps(result, indent=2), encoding="utf-8")


# ---------------------------------------------------------------------- report


def _interval(value: Mapping[str, float], signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{value['estimate']:{sign}.3f} [{value['low']:{sign}.3f}, {value['high']:{sign}.3f}]"


def table(rows: Sequence[Mapping[str, Any]], traffic: Mapping[str, Traffic]) -> str:
    """The printed comparison: per method, no library then learned."""
    header = ("method", "learning calls", "learning tokens", "held-out mean [95 % CI]", "gain vs none [95 % CI]", "learn s", "eval s")
    lines = [header]
    for row in rows:
        stats = row["stats"]
        learn, evaluation = traffic[f"{row['label']}-learn"], traffic[f"{row['label']}-eval"]
        lines.append((f"{row['method']} no library", "0", "0", _interval(stats["none"]), "", "", ""))
        lines.append((
            f"{row['method']} learned",
            str(learn.calls),
            str(learn.prompt_tokens + learn.completion_tokens),
            _interval(stats["learned"]),
            _interval({"estimate": stats["gain"]["difference"], **stats["gain"]}, signed=True),
            f"{row['learn_seconds']:.0f}",
            f"{row['eval_seconds']:.0f} ({evaluation.calls} calls)",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines) + "\n"


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    now = datetime.datetime.now().isoformat(timespec="seconds")
    return f"{platform.processor() or platform.machine()}, {cores} cores, load average {load}, {now}"


@contextmanager
def work_folder(path: str | None) -> Iterator[Path]:
    """`path` (must be empty or new, and is kept), else a temporary folder removed at the end."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix="bench-demos-") as temp:
            yield Path(temp)
        return
    folder = Path(path)
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"--work {folder} is not empty: the counts need a fresh folder")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


def run(args: argparse.Namespace) -> int:
    from grpo_dsl.clients.local import LocalServer, model_path

    if not args.skip_dspy and not Path(args.dspy_python).is_file():
        raise SystemExit(f"--dspy-python {args.dspy_python} does not exist; see this file's docstring for the set-up")
    print(f"machine: {machine()}", flush=True)
    with work_folder(args.work) as work, LocalServer(model_path(), log_path=work / "server.log") as server:
        with CountingProxy(server.base_url.removesuffix("/v1")) as proxy:
            sides = []
            if not args.skip_grpo:
                print("grpo-dsl: learning and evaluating ...", flush=True)
                sides.append(run_grpo(proxy, work, args.samples))
            if not args.skip_dspy:
                print("DSPy SIMBA: compiling and evaluating ...", flush=True)
                sides.append(run_dspy(proxy, work, args.samples, args))
        rows = [
            {"method": s.method, "label": s.label, "stats": side_statistics(s), "learn_seconds": s.learn_seconds,
             "eval_seconds": s.eval_seconds, "learned": s.learned_summary}
            for s in sides
        ]  # fmt: skip
        print(f"\nquick start task, {args.samples} samples per held-out question, 95 % intervals over questions\n")
        print(table(rows, proxy.traffic))
        print(f"machine: {machine()}")
        for row in rows:
            print(f"\n{row['method']} learned: {json.dumps(row['learned'], indent=2, ensure_ascii=False)}")
        print("\nrequests per label: " + json.dumps({label: proxy.traffic[label].to_json() for label in LABELS}, indent=2))
        if args.out:
            traffic = {label: proxy.traffic[label].to_json() for label in LABELS}
            document = {"machine": machine(), "samples": args.samples, "methods": rows, "traffic": traffic}
            Path(args.out).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dspy-python", default="/tmp/venv-dspy/bin/python", help="python of the virtualenv that has dspy==3.4.1")
    parser.add_argument("--skip-dspy", action="store_true", help="run grpo-dsl only")
    parser.add_argument("--skip-grpo", action="store_true", help="run DSPy only")
    parser.add_argument("--samples", type=int, default=4, help="answers per held-out question (default 4, the quick start's)")
    parser.add_argument("--simba-bsize", type=int, default=20, help="SIMBA mini-batch (default 20, grpo's batch_size)")
    parser.add_argument("--simba-candidates", type=int, default=4, help="SIMBA num_candidates (default 4, grpo's group_size)")
    parser.add_argument("--simba-steps", type=int, default=2, help="SIMBA max_steps (default 2, grpo's steps in one epoch)")
    parser.add_argument("--work", help="keep everything (runs, logs, configs) in this new folder; default: a temporary one")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--dspy-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dspy_worker:
        dspy_worker(args.dspy_worker)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
