"""Resets that a worker living across maps runs before each map.

A worker process that serves many maps (the warm workers of ``'processes'``) may still
hold objects of an earlier map, and a library's caches keyed by them: EXtra-data's open
files, say, which would be handed back when the next map unpickles the same path, with
the file's old index. A package that knows such a cache registers a reset with
:func:`register_worker_reset` when it is imported; a context whose workers live across
maps calls :func:`reset_worker_state` in each worker before it unpickles a map.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["register_worker_reset", "reset_worker_state"]

_resets: list[Callable[[], object]] = []


def register_worker_reset(reset: Callable[[], object]) -> None:
    """Have ``reset()`` run in every long-lived worker before each map.

    Args:
        reset: a function of no argument that drops what this process kept of earlier
            maps. It must be cheap when there is nothing to drop, and must not fail;
            an exception from it is ignored (a worker must not end over another
            library's internals). Registering the same function twice registers it once.
    """
    if reset not in _resets:
        _resets.append(reset)


def reset_worker_state() -> None:
    """Run the registered resets, in the order they were registered (in a worker)."""
    for reset in list(_resets):
        try:
            reset()
        except Exception:
            continue
