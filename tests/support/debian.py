"""Debian packages the test suite needs, installed when missing (as root, or with `sudo -n`).

The README's test command runs on a fresh machine: the report tests need `chromium`
and the sandbox of the python tool needs `bubblewrap`. Each is installed with
apt-get the first time a test needs it; when that is impossible the test fails
with apt-get's message (it is never skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from grpo_dsl.rollout.sandbox import bubblewrap_problem


def apt_install(package: str) -> None:
    """Install a Debian package without interaction (refreshing the package lists first)."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        result = subprocess.run([*sudo, *command], env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed with status {result.returncode}:\n{result.stderr[-3000:]}")


def require_bubblewrap() -> None:
    """Make sure the python tool's sandbox can run: install `bubblewrap` when `bwrap`
    is missing, then fail with the reason if it still cannot start a sandbox."""
    if shutil.which("bwrap") is None:
        apt_install("bubblewrap")
        bubblewrap_problem.cache_clear()
    problem = bubblewrap_problem()
    if problem is not None:
        pytest.fail(f"the python tool's sandbox cannot run on this machine: {problem}")
