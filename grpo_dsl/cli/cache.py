"""`grpo cache info` and `grpo cache prune --older-than 30d`: the shared response cache.

Both act on the cache folder every model without its own `cache` uses (the user
cache directory, or `$GRPO_CACHE_DIR`), or on `--dir`. No model is called; the
client stack is not built.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpo_dsl.cli.console import EXIT_OK, Console, UsageError

if TYPE_CHECKING:
    from grpo_dsl.clients.cache import CacheInfo

__all__ = ["cache", "parse_age"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_age(text: str) -> float | None:
    """Seconds in an age such as `30d`, `12h`, `90m`, `2w` or `45s`; None when it is not one."""
    match = _AGE.fullmatch(text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    scaled, unit = float(size), "B"
    for unit in ("KB", "MB", "GB"):
        scaled /= 1000
        if scaled < 1000:
            break
    return f"{scaled:.1f} {unit}"


def _ago(moment: float) -> str:
    days = (time.time() - moment) / 86400
    return f"{days:.1f} days ago" if days >= 1 else f"{days * 24:.1f} hours ago"


def _text(info: CacheInfo) -> str:
    lines = [f"cache {info.path}", f"  entries  {info.entries:,} ({_size(info.size)})"]
    lines += [f"    {space:<28} {count:>8,}" for space, count in info.namespaces.items()]
    if info.oldest_use is not None:
        lines.append(f"  least recently used entry: {_ago(info.oldest_use)}")
    last, rate = info.last_session, info.last_hit_rate
    if last is None:
        lines.append("  no run has closed the cache yet")
    else:
        lookups = int(last["hits"] + last["misses"])
        shown = f"{100 * rate:.1f} %" if rate is not None else "-"
        lines.append(
            f"  last run (ended {_ago(last['finished'])}): {lookups:,} lookups, {int(last['hits']):,} answered from the cache"
            f" (hit rate {shown}), {int(last['stored']):,} new answers stored"
        )
    return "\n".join(lines)


def _info_document(folder: Path, info: CacheInfo | None) -> dict[str, Any]:
    """`grpo cache info --format json`: the cache file and what is in it (`found` false, and
    nothing in it, when the folder has no cache yet)."""
    from grpo_dsl.clients.cache import CACHE_FILE

    if info is None:
        return {
            "path": str(folder / CACHE_FILE),
            "found": False,
            "entries": 0,
            "bytes": 0,
            "namespaces": {},
            "oldest_use": None,
            "last_run": None,
            "last_hit_rate": None,
        }
    return {
        "path": str(info.path),
        "found": True,
        "entries": info.entries,
        "bytes": info.size,
        "namespaces": dict(info.namespaces),
        "oldest_use": info.oldest_use,
        "last_run": dict(info.last_session) if info.last_session is not None else None,
        "last_hit_rate": info.last_hit_rate,
    }


def cache(args: argparse.Namespace, console: Console) -> int:
    """`grpo cache info [--dir DIR]` or `grpo cache prune --older-than AGE [--dir DIR]`."""
    from grpo_dsl.clients.cache import cache_info, prune_cache
    from grpo_dsl.clients.local import cache_dir

    folder = Path(args.dir) if args.dir else cache_dir()
    if args.action == "prune":
        age = parse_age(args.older_than)
        if age is None:
            raise UsageError(f"--older-than takes an age such as 30d, 12h or 2w, not {args.older_than!r}")
        removed = prune_cache(folder, age)
        info = cache_info(folder)
        if console.json:
            after = _info_document(folder, info)
            document = {"older_than": args.older_than, "seconds": age, "removed": removed}
            console.document("cache-prune", {**document, **{key: after[key] for key in ("path", "entries", "bytes")}})
        else:
            left = f"; {info.entries:,} remain ({_size(info.size)})" if info is not None else ""
            print(f"removed {removed:,} entries not used for {args.older_than}{left}")
        return EXIT_OK
    info = cache_info(folder)
    if console.json:
        console.document("cache-info", _info_document(folder, info))
    else:
        print(_text(info) if info is not None else f"no response cache in {folder}")
    return EXIT_OK
