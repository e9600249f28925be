"""Child cgroups (v1) for tests of what pashmap sees of a scheduler's limits.

The tests that use them run a new Python process that first moves itself into a fresh
cgroup with the limit under test; they are skipped where no such cgroup can be made
(no cgroup v1 hierarchy for the controller, or not allowed to create one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def cgroup_v1_root(controller: str) -> Path | None:
    """Where the cgroup v1 hierarchy carrying ``controller`` is mounted, if any."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] == "cgroup" and controller in fields[-1].split(","):
            return Path(fields[4])
    return None


def make_child_cgroup(controller: str) -> Iterator[Path]:
    """A new cgroup (v1) under the root of ``controller``'s hierarchy, removed after.

    Skips the test when none can be made here (no v1 hierarchy, or not allowed).
    """
    root = cgroup_v1_root(controller)
    if root is None:
        pytest.skip(f"no cgroup v1 {controller} hierarchy on this machine")
    directory = root / f"pashmap-test-{os.getpid()}"
    try:
        directory.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here ({exc})")
    try:
        yield directory
    finally:
        directory.rmdir()


def run_in_cgroup(directory: Path, code: str) -> str:
    """Run ``code`` in a new Python process that first moves itself into ``directory``.

    Returns:
        Its standard output, stripped.

    Raises:
        AssertionError: the process failed (with its exit status and standard error:
            -9 is the OOM killer's SIGKILL).
    """
    procs = str(directory / "cgroup.procs")
    prologue = f"import os\nopen({procs!r}, 'w').write(str(os.getpid()))\n"
    done = subprocess.run(
        [sys.executable, "-c", prologue + code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr}"
    return done.stdout.strip()
