"""What this process may use: CPUs (affinity, cgroup quota, override) and memory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pashmap import machine
from pashmap.contexts import available_cpus, resolve_num_workers


def test_available_cpus_follows_affinity() -> None:
    assert available_cpus() <= len(os.sched_getaffinity(0))
    assert available_cpus() >= 1


def test_the_environment_override_lowers_the_count() -> None:
    code = "from pashmap.contexts import available_cpus; print(available_cpus())"
    env = {**os.environ, machine.MAX_CPUS_VARIABLE: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
    env[machine.MAX_CPUS_VARIABLE] = "not a number"  # ignored, not fatal
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(available_cpus())


def test_num_workers_none_means_every_available_cpu() -> None:
    assert resolve_num_workers(None, "X") == available_cpus()
    with pytest.raises(TypeError, match=r"X\(num_workers=...\)"):
        resolve_num_workers(2.0, "X")
    with pytest.raises(ValueError, match="at least 1"):
        resolve_num_workers(0, "X")


def _cgroup_v1_root(controller: str) -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] == "cgroup" and controller in fields[-1].split(","):
            return Path(fields[4])
    return None


@pytest.fixture
def child_cgroup(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A new cgroup (v1) under the root of a controller's hierarchy; skipped when none
    can be made here (no v1 hierarchy, or not allowed)."""
    controller = request.param
    root = _cgroup_v1_root(controller)
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
    """Run ``code`` in a new Python process that first moves itself into ``directory``."""
    procs = str(directory / "cgroup.procs")
    prologue = f"import os\nopen({procs!r}, 'w').write(str(os.getpid()))\n"
    done = subprocess.run(
        [sys.executable, "-c", prologue + code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("child_cgroup", ["cpu"], indirect=True)
def test_a_cgroup_v1_cpu_quota_caps_the_worker_count(child_cgroup: Path) -> None:
    (child_cgroup / "cpu.cfs_period_us").write_text("100000")
    (child_cgroup / "cpu.cfs_quota_us").write_text("50000")  # half a CPU
    out = run_in_cgroup(
        child_cgroup,
        "from pashmap.contexts import available_cpus\n"
        "from pashmap.machine import cgroup_cpu_quota\n"
        "print(available_cpus(), cgroup_cpu_quota())",
    )
    assert out == "1 0.5"


@pytest.mark.parametrize("child_cgroup", ["memory"], indirect=True)
def test_a_cgroup_v1_memory_limit_is_seen(child_cgroup: Path) -> None:
    (child_cgroup / "memory.limit_in_bytes").write_text(str(2**30))
    out = run_in_cgroup(
        child_cgroup,
        "from pashmap.contexts import available_memory\nprint(available_memory())",
    )
    assert 0 < int(out) <= 2**30
