"""`grpo module show|log|diff|blame|package|export`: read the history of a prompt module
(no model is called), build a wheel of a version, or register its versions in a prompt registry."""

from __future__ import annotations

import argparse
from typing import Any

from grpo_dsl.cli.console import EXIT_OK, Console, UsageError
from grpo_dsl.modules import (
    blame,
    diff_modules,
    export_to_mlflow,
    format_blame,
    format_diff,
    format_log,
    format_show,
    load_module,
    module_log,
    package_module,
    parse_reference,
)

__all__ = ["module"]


def _result(args: argparse.Namespace) -> tuple[str, Any]:
    """The action's text for people and its JSON document."""
    path, version = parse_reference(args.reference)
    if args.action == "log":
        entries = module_log(path)
        return format_log(entries), {"path": str(path), "versions": [e.to_json() for e in entries]}
    if args.action == "diff":
        other_path, other_version = parse_reference(args.other)
        diff = diff_modules(load_module(path, version), load_module(other_path, other_version))
        return format_diff(diff), diff.to_json()
    if args.action == "blame":
        found = blame(load_module(path, version), args.id)
        return format_blame(found), found.to_json()
    if args.action == "package":
        wheel = package_module(path, version, name=args.name, out_dir=args.out)
        return f"{wheel}", {"path": str(path), "wheel": str(wheel)}
    if args.action == "export":
        registered = export_to_mlflow(path, version, tracking_uri=args.tracking_uri, name=args.name)
        text = "\n".join(
            f"{path} {r.module_version}: {'registered as' if r.created else 'already registered as'} {r.prompt} version {r.prompt_version}"
            for r in registered
        )
        versions = [
            {"module_version": r.module_version, "prompt": r.prompt, "prompt_version": r.prompt_version, "created": r.created} for r in registered
        ]
        return text, {"path": str(path), "registry": args.to, "tracking_uri": args.tracking_uri, "versions": versions}
    loaded = load_module(path, version)
    return format_show(loaded), {"path": str(loaded.path), "manifest": dict(loaded.manifest)}


def module(args: argparse.Namespace, console: Console) -> int:
    """`grpo module show|log|diff|blame|package|export`: read the history of a prompt module,
    package a version as a wheel or export the versions to a prompt registry."""
    references = [args.reference] + ([args.other] if args.action == "diff" else [])
    for reference in references:
        path, _ = parse_reference(reference)
        if not (path / "index.json").is_file():
            raise UsageError(f"{path} is not a prompt module: it has no index.json")
    text, document = _result(args)
    if console.json:
        console.document(f"module-{args.action}", document)
    else:
        print(text)
    return EXIT_OK
