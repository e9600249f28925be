"""What this process may use of the machine: CPUs and memory, as a scheduler grants them.

A node shared through Slurm, a container started with ``--cpus=2`` or a job under a
cgroup limit gives a process less than ``os.cpu_count()`` and ``/proc/meminfo`` say.
Contexts size their default worker count with :func:`available_cpus` (the smallest of the
CPU affinity, the cgroup CPU quota and the ``PASHMAP_MAX_CPUS`` override, as loky's
``cpu_count`` does) and check allocations against :func:`available_memory` (the smaller
of ``MemAvailable`` and the room under the process's cgroup memory limit). Both cgroup
versions are read, wherever they are mounted (``/proc/self/cgroup`` and
``/proc/self/mountinfo`` tell where the process's own cgroup is).
"""

from __future__ import annotations

import functools
import math
import operator
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from pashmap.errors import OversubscriptionWarning

__all__ = [
    "MAX_CPUS_VARIABLE",
    "OVERSUBSCRIPTION",
    "available_cpus",
    "available_memory",
    "cgroup_cpu_quota",
    "cgroup_directories",
    "cgroup_memory_room",
    "describe_cpus",
    "format_bytes",
    "resolve_num_workers",
]

MAX_CPUS_VARIABLE = "PASHMAP_MAX_CPUS"

# resolve_num_workers warns when num_workers is above this many workers per usable CPU
# (and above _FEW_WORKERS): a few per CPU can pay for threads that wait on I/O; far more
# only make the workers take turns.
OVERSUBSCRIPTION = 8
_FEW_WORKERS = 32

_GiB = 2**30


def available_cpus() -> int:
    """The number of CPUs this process may keep busy; at least 1.

    The smallest of: the CPUs of its affinity mask (taskset, Slurm's CPU binding, a cgroup
    cpuset), its cgroup CPU quota rounded up (``docker --cpus``, Kubernetes limits; cgroup
    v1 ``cpu.cfs_quota_us`` or v2 ``cpu.max``), and the ``PASHMAP_MAX_CPUS`` environment
    variable when it is set to a positive integer.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _cpu_quota_once()
    if quota is not None:
        count = min(count, math.ceil(quota))
    override = os.environ.get(MAX_CPUS_VARIABLE, "").strip()
    if override:
        try:
            limit = int(override)
        except ValueError:
            limit = 0
        if limit > 0:
            count = min(count, limit)
    return max(1, count)


def resolve_num_workers(num_workers: object, context_name: str) -> int:
    """Check a ``num_workers`` argument and turn ``None`` into :func:`available_cpus`.

    A count far above the CPUs this process may use (more than :data:`OVERSUBSCRIPTION`
    workers per usable CPU, and more than 32) gives an
    :class:`~pashmap.OversubscriptionWarning` saying how many CPUs are usable: a
    context calls this once, when it is made, so the warning comes once per context.

    Args:
        num_workers: what the user passed: ``None`` or a positive integer.
        context_name: the context's class name, for error messages.

    Returns:
        The number of workers, at least 1.

    Raises:
        TypeError: ``num_workers`` is not an integer (``True``/``False`` and floats
            included).
        ValueError: ``num_workers`` is 0 or negative.
    """
    if num_workers is None:
        return available_cpus()
    if isinstance(num_workers, bool):
        raise TypeError(
            f"{context_name}(num_workers=...) needs a positive integer or None, got {num_workers!r}"
        )
    try:
        count = operator.index(num_workers)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{context_name}(num_workers=...) needs a positive integer or None (all available "
            f"CPUs), got {num_workers!r} of type {type(num_workers).__name__}"
        ) from None
    if count < 1:
        raise ValueError(
            f"{context_name}(num_workers=...) must be at least 1, got {count}; pass None to "
            f"use every available CPU ({available_cpus()} here)"
        )
    if count > _FEW_WORKERS:
        cpus = available_cpus()
        if count > OVERSUBSCRIPTION * cpus:
            warnings.warn(
                f"{context_name}(num_workers={count}) asks for far more workers than the "
                f"{cpus} usable CPU{'s' if cpus > 1 else ''} of this process (its CPU "
                f"affinity, cgroup CPU quota and {MAX_CPUS_VARIABLE}): the workers will take "
                f"turns on the CPUs and the map will be slower than with num_workers=None "
                f"({cpus})",
                OversubscriptionWarning,
                stacklevel=3,
            )
    return count


def available_memory() -> int | None:
    """The bytes this process can still allocate, or ``None`` when it cannot be told.

    The smaller of the system's ``MemAvailable`` and the room left under the memory limit
    of the process's cgroup and its parents (a Slurm job, a container), v1 or v2.
    """
    candidates: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    room = cgroup_memory_room()
    if room is not None:
        candidates.append(room)
    return min(candidates) if candidates else None


def cgroup_cpu_quota() -> float | None:
    """The CPUs' worth of time the process's cgroups allow (e.g. ``2.0``), or ``None``.

    The smallest quota over the process's own cgroup and its parents, v2 (``cpu.max``)
    or v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); ``None`` without a quota.
    """
    quotas: list[float] = []
    for directory, version in cgroup_directories("cpu"):
        try:
            if version == 2:
                quota, period = (directory / "cpu.max").read_text().split()
            else:
                quota = (directory / "cpu.cfs_quota_us").read_text().strip()
                period = (directory / "cpu.cfs_period_us").read_text().strip()
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1") and int(period) > 0:
            quotas.append(int(quota) / int(period))
    return min(quotas) if quotas else None


@functools.cache
def _cpu_quota_once() -> float | None:
    # Read once per process: available_cpus() is asked at every map of some contexts.
    return cgroup_cpu_quota()


def cgroup_memory_room() -> int | None:
    """Bytes left under the tightest memory limit of the process's cgroups, or ``None``.

    v2: ``memory.max`` minus ``memory.current``; v1: ``memory.limit_in_bytes`` minus
    ``memory.usage_in_bytes`` (a v1 "no limit" is a huge number, taken as none).
    """
    rooms: list[int] = []
    for directory, version in cgroup_directories("memory"):
        names = (
            ("memory.max", "memory.current")
            if version == 2
            else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        )
        try:
            limit = (directory / names[0]).read_text().strip()
            if limit == "max" or int(limit) >= 2**62:
                continue
            used = int((directory / names[1]).read_text())
        except (OSError, ValueError):
            continue
        rooms.append(max(0, int(limit) - used))
    return min(rooms) if rooms else None


def cgroup_directories(controller: str) -> Iterator[tuple[Path, int]]:
    """The directories of the process's cgroup for ``controller`` and of its parents.

    Yields ``(directory, version)`` from the process's own cgroup up to the root of the
    hierarchy, for the v1 hierarchy that has ``controller`` if there is one, else the
    v2 (unified) one. Nothing on a system without cgroups.
    """
    for mount_point, mount_root, relative, version in _hierarchies(controller):
        if not relative.startswith(mount_root):
            continue  # our cgroup lies outside what is mounted here (a container's view)
        inside = relative[len(mount_root) :].strip("/")
        directory = Path(mount_point, inside) if inside else Path(mount_point)
        root = Path(mount_point)
        while True:
            yield directory, version
            if directory == root or directory.parent == directory:
                break
            directory = directory.parent
        return


@functools.cache
def _hierarchies(controller: str) -> tuple[tuple[str, str, str, int], ...]:
    """``(mount point, mount root, cgroup path, version)`` of the hierarchy to read.

    The v1 hierarchy carrying ``controller`` comes first (it is the one that enforces
    limits when both exist), then the v2 one.
    """
    try:
        memberships = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ()
    v1_path = v2_path = None
    for line in memberships:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            v2_path = path
        elif controller in controllers.split(","):
            v1_path = path
    found: list[tuple[str, str, str, int]] = []
    for line in mounts:
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        kind = fields[separator + 1] if len(fields) > separator + 1 else ""
        options = fields[separator + 3] if len(fields) > separator + 3 else ""
        root, mount_point = fields[3], fields[4]
        if kind == "cgroup" and v1_path is not None and controller in options.split(","):
            found.insert(0, (mount_point, root, v1_path, 1))
        elif kind == "cgroup2" and v2_path is not None:
            found.append((mount_point, root, v2_path, 2))
    return tuple(found[:1])


def format_bytes(nbytes: float) -> str:
    """A size for messages: ``'1.50 GiB'``, ``'12.0 MiB'``, ``'512 bytes'``."""
    for unit, scale in (("TiB", 2**40), ("GiB", _GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} bytes"


def describe_cpus() -> str:
    """The CPUs in one line, for reports: usable, in the machine, affinity and cgroup quota.

    Returns:
        e.g. ``"2 usable, 8 in the machine (affinity 8, cgroup quota 2 CPUs)"``.
    """
    text = f"{available_cpus()} usable, {os.cpu_count()} in the machine"
    if hasattr(os, "sched_getaffinity"):
        text += f" (affinity {len(os.sched_getaffinity(0))}"
        quota = cgroup_cpu_quota()
        text += f", cgroup quota {quota:g} CPUs)" if quota is not None else ")"
    return text
