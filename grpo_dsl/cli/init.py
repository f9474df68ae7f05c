"""`grpo init [DIR] [--endpoint KIND]`: a starter project that checks clean and runs.

It writes `starter.grpo` (its model block made for the endpoint), a small dataset in
`data/`, the reward in `rewards.py`, `.env.example` with the variables the model block
reads, and a `.gitignore`. The files are copied from `cli/starter/`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from grpo_dsl.cli.console import EXIT_OK, Console, UsageError
from grpo_dsl.core.files import atomic_write_text

__all__ = ["ENDPOINTS", "Endpoint", "init", "starter_files"]

STARTER = Path(__file__).resolve().parent / "starter"
PROGRAM = "starter.grpo"
MODEL_MARK = "@MODEL@"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What `--endpoint KIND` puts in the model block and in `.env.example`."""

    model: str
    """The model block."""
    variables: tuple[tuple[str, str, str], ...]
    """`(name, example value, comment)` of each variable the block reads."""


def _hosted(name: str, url: str, key: str, price: tuple[float, float], where: str) -> Endpoint:
    model = (
        "model llm {\n"
        f'  name     = env("GRPO_MODEL", "{name}")\n'
        f'  base_url = env("GRPO_BASE_URL", "{url}")\n'
        f'  api_key  = env("{key}")\n'
        "  # USD per million tokens, for the estimate and the budget: check your provider's prices\n"
        f"  price {{ input = {price[0]}  output = {price[1]} }}\n"
        "}"
    )
    variables = (
        (key, "", f"your API key ({where})"),
        ("GRPO_BASE_URL", url, "the endpoint; change it for a proxy or a compatible server"),
        ("GRPO_MODEL", name, "the model name sent to the endpoint"),
    )
    return Endpoint(model, variables)


def _self_hosted(name: str, url: str, concurrency: int, start: str) -> Endpoint:
    model = (
        "model llm {\n"
        f'  name        = env("GRPO_MODEL", "{name}")\n'
        f'  base_url    = env("GRPO_BASE_URL", "{url}")\n'
        '  api_key     = env("GRPO_API_KEY", "none")  # a local server takes any key\n'
        f"  concurrency = {concurrency}\n"
        "}"
    )
    variables = (
        ("GRPO_BASE_URL", url, f"the server's OpenAI-compatible address ({start})"),
        ("GRPO_MODEL", name, "the model name the server knows"),
        ("GRPO_API_KEY", "none", "only if your server checks keys"),
    )
    return Endpoint(model, variables)


ENDPOINTS: dict[str, Endpoint] = {
    "openai": _hosted("gpt-4o-mini", "https://api.openai.com/v1", "OPENAI_API_KEY", (0.15, 0.6), "platform.openai.com"),
    "deepseek": _hosted("deepseek-chat", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", (0.28, 0.42), "platform.deepseek.com"),
    "ollama": _self_hosted("qwen2.5:7b", "http://localhost:11434/v1", 2, "`ollama serve`, after `ollama pull qwen2.5:7b`"),
    "vllm": _self_hosted("Qwen/Qwen2.5-7B-Instruct", "http://localhost:8000/v1", 8, "`vllm serve Qwen/Qwen2.5-7B-Instruct`"),
    "local": Endpoint(
        'model llm {\n  name        = "qwen2.5-coder-0.5b-instruct"  # no base_url: the embedded local model\n  concurrency = 1\n}',
        (),
    ),
}


def _env_example(kind: str, endpoint: Endpoint) -> str:
    lines = [
        f"# The variables starter.grpo reads (endpoint: {kind}). Copy this file to .env and fill it in:",
        "# grpo run and grpo eval read .env from the program's folder; variables already set win.",
    ]
    if not endpoint.variables:
        lines.append("# The embedded local model needs none (pip install 'grpo-dsl[local]').")
    for name, value, comment in endpoint.variables:
        lines += [f"# {comment}", f"{name}={value}"]
    return "\n".join(lines) + "\n"


def starter_files(kind: str) -> dict[str, str]:
    """The starter project for an endpoint of `kind`: relative path -> text."""
    endpoint = ENDPOINTS[kind]
    files = {
        PROGRAM: (STARTER / "program.grpo").read_text(encoding="utf-8").replace(MODEL_MARK, endpoint.model),
        "rewards.py": (STARTER / "rewards.py").read_text(encoding="utf-8"),
        ".env.example": _env_example(kind, endpoint),
        ".gitignore": (STARTER / "gitignore").read_text(encoding="utf-8"),
    }
    for data in sorted((STARTER / "data").glob("*.jsonl")):
        files[f"data/{data.name}"] = data.read_text(encoding="utf-8")
    return files


def init(args: argparse.Namespace, console: Console) -> int:
    """`grpo init [DIR] [--endpoint KIND] [--force]`: write the starter project into DIR."""
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"not a folder: {folder}")
    files = starter_files(args.endpoint)
    existing = sorted(name for name in files if (folder / name).exists())
    if existing and not args.force:
        raise UsageError(f"{folder} already has {', '.join(existing)}; use --force to overwrite")
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
        console.detail(f"wrote {target}")
    program = folder / PROGRAM
    if console.json:
        console.document("init", {"folder": str(folder), "endpoint": args.endpoint, "program": str(program), "files": sorted(files)})
    else:
        print(f"wrote a starter project for {args.endpoint} in {folder}: {', '.join(sorted(files))}")
        console.info(_next_steps(folder, args.endpoint))
    return EXIT_OK


def _next_steps(folder: Path, kind: str) -> str:
    steps = [] if str(folder) == "." else [f"cd {folder}"]
    if ENDPOINTS[kind].variables:
        steps.append("cp .env.example .env   # then fill it in")
    steps += [f"grpo plan {PROGRAM}", f"grpo run {PROGRAM}", f"grpo eval {PROGRAM}"]
    return "next:\n" + "\n".join(f"  {step}" for step in steps)
