"""What this process may use: CPUs (affinity, cgroup quota, override) and memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pashmap as pm
import pashmap.contexts
from pashmap import machine
from pashmap.contexts import available_cpus, resolve_num_workers
from tests.cgroups import run_in_cgroup


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


def test_num_workers_far_above_the_cpus_warns_once() -> None:
    cpus = available_cpus()
    with pytest.warns(pm.OversubscriptionWarning, match=rf"the {cpus} usable CPU") as caught:
        assert resolve_num_workers(1000 * cpus, "X") == 1000 * cpus
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "X(num_workers=" in message
    assert "slower" in message


def test_a_few_workers_per_cpu_do_not_warn() -> None:
    # (pytest turns warnings into errors: a warning here fails the test.)
    cpus = available_cpus()
    assert resolve_num_workers(4 * cpus, "X") == 4 * cpus
    assert resolve_num_workers(32, "X") == 32


def test_every_context_warns_about_too_many_workers(context_name: str) -> None:
    if context_name == "local":
        pytest.skip("the local context has one worker")
    with pytest.warns(pm.OversubscriptionWarning, match="usable"):
        context = pm.contexts.create_context(context_name, num_workers=1000 * available_cpus())
    context.close()


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
