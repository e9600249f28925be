"""Warn about kernels that write to arrays a worker process cannot share with the caller.

A forked worker writes into its own copy-on-write copy of an ordinary numpy array, so
the caller never sees the writes. The kit's :func:`pashmap.contexts.lost_writes` reads
the kernel's source to find what it writes into (also through attributes, dict and list
entries and local aliases); here an array reaches the caller when it lives in shared
memory (:func:`pashmap_shm.is_shared`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pashmap.contexts import NotSharedWarning, lost_writes, warn_about_lost_writes
from pashmap_shm.blocks import is_shared

__all__ = [
    "NotSharedWarning",
    "unshared_written_arrays",
    "warn_about_unshared_writes",
]

_ADVICE = (
    "Allocate it with pm.array()/pm.zeros() (or ctx.array()) while the process context "
    "is in use, or copy it into shared memory with {name} = pm.array(fill={name})"
)


def warn_about_unshared_writes(kernel: Callable[..., Any]) -> None:
    """Warn with :class:`NotSharedWarning` for each array the kernel would write in vain.

    Args:
        kernel: the kernel about to be run in worker processes.
    """
    warn_about_lost_writes(kernel, is_shared, where="worker process", advice=_ADVICE)


def unshared_written_arrays(kernel: Callable[..., Any]) -> list[str]:
    """The names of writable numpy arrays outside shared memory that ``kernel`` writes into.

    Args:
        kernel: a function, a lambda, a ``functools.partial`` or a bound method.

    Returns:
        The names, sorted (see :func:`pashmap.contexts.lost_writes`).
    """
    return lost_writes(kernel, is_shared)
