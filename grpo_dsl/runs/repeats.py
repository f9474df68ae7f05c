"""Where the runs of a learn with `repeats` live, and the caches that runs share.

```
runs/<learn>/<run-id>/          the repeated run: run.json ("kind": "repeats", the seeds,
                                the ranking), plan.json, events.jsonl, usage.json
  repeats/1/  repeats/2/  ...   a run directory per repeat; its plan has the repeat's seed
runs/<learn>/cache/             the response cache of every repeat of every repeated run
runs/<evaluate>/cache/          the response cache of every ablation of an evaluate
```

Repeat r of a learn with seed s learns with seed s + r − 1. Repeats share their cache,
so a request that two repeats make alike is paid once, and running a repeated learn
again is answered from the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grpo_dsl.core.files import read_json

__all__ = [
    "REPEATS_KIND",
    "is_repeated_run",
    "repeat_dir",
    "repeat_dirs",
    "repeat_seed",
    "runs_root_of",
    "shared_cache",
    "shared_cache_of",
]

REPEATS_KIND = "repeats"
"""The `kind` in the run.json of a repeated run."""


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed of repeat `repeat` (1-based) of a learn whose seed is `seed`."""
    return seed + repeat - 1


def shared_cache(runs_root: Path, block: str) -> Path:
    """The response cache shared by the repeated runs of a learn, or the ablations of an evaluate, named `block`."""
    return runs_root / block / "cache"


def _info(path: Path) -> dict[str, Any]:
    try:
        info = read_json(path / "run.json")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def is_repeated_run(path: Path) -> bool:
    """Whether `path` is the directory of a repeated run (it holds one run directory per repeat)."""
    return _info(path).get("kind") == REPEATS_KIND


def repeat_dir(group: Path, repeat: int) -> Path:
    """The run directory of repeat `repeat` of the repeated run `group`."""
    return group / "repeats" / str(repeat)


def repeat_dirs(group: Path) -> list[Path]:
    """The run directories of the repeats of `group` that have started, in repeat order."""
    folder = group / "repeats"
    found = [p for p in folder.iterdir() if p.name.isdigit() and (p / "run.json").is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name))


def runs_root_of(run_dir: Path) -> Path:
    """The runs folder a run directory is in: `runs/<learn>/<run-id>/`, or deeper for a repeat."""
    if "repeat" in _info(run_dir):
        return run_dir.parents[3]
    return run_dir.parents[1]


def shared_cache_of(run_dir: Path) -> Path | None:
    """The shared cache a run directory uses: that of its learn when it is a repeat, else None (its own)."""
    if "repeat" not in _info(run_dir):
        return None
    return shared_cache(runs_root_of(run_dir), run_dir.parents[2].name)
