"""Which maps go to warm workers: each map pickled once, and judged by what pickling found.

Workers that were not forked at the map -- ``start_method='forkserver'`` or ``'spawn'``,
``persistent=True``, the maps inside a ``with ProcessContext()`` block -- receive the map
pickled (:mod:`pashmap_shm.map_messages`). :func:`pickle_for_warm_workers` pickles it
once and decides from what the pickling found:

* the map does not pickle: a ``TypeError`` that says what to do, except in a warm block,
  whose map is then forked as it would be outside the block;
* it refers to writable shared memory that pashmap did not allocate (a ``numpy.memmap``
  opened ``'r+'``, a ``multiprocessing.shared_memory`` buffer): the workers would write
  into a copy, and the writes would be lost. A warm block forks it; the pooled modes
  raise a ``TypeError`` naming the array;
* it refers to arrays in fork-only shared memory, or (in a warm block) to more bytes of
  ordinary arrays than the block's copy limit: a warm block forks it, where they are
  shared for free; the pooled modes send it and warn that the workers get copies.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap import ContextMismatchError, MapTarget
from pashmap.contexts import NotSharedWarning, user_stacklevel
from pashmap_shm.map_messages import EncodedMap, encode_map

__all__ = ["pickle_for_warm_workers", "warn_about_copies"]


def pickle_for_warm_workers(
    kernel: Callable[..., Any],
    target: MapTarget[Any],
    shares: Sequence[Any],
    counts: NDArray[np.int64] | None,
    blas_threads: int | None,
    *,
    warm_block: bool,
    copy_limit: int | None,
    start_method: str,
    persistent: bool,
) -> EncodedMap | None:
    """The map pickled for warm workers (complete), or ``None`` for a warm block's map
    to fork.

    Args:
        kernel, target, shares, counts, blas_threads: the map (counts: the progress
            counters, or ``None``; blas_threads: the workers' BLAS thread limit).
        warm_block: the map runs inside a ``with`` block (of a ``'fork'`` context),
            which forks what cannot travel whole and cheaply.
        copy_limit: in a warm block, the most bytes of ordinary arrays the map may copy
            (pickling stops past it); ``None``: no limit.
        start_method, persistent: the context's, to say which setting pickles the map.

    Raises:
        TypeError: not in a warm block, the map does not pickle, or it holds writable
            arrays in shared memory pashmap did not allocate.
        ContextMismatchError: it holds an accumulator made for another context.
    """
    try:
        encoded = encode_map(kernel, target, shares, counts, blas_threads, copy_limit=copy_limit)
    except ContextMismatchError:
        raise
    except Exception as exc:
        if warm_block:
            return None  # forked
        raise TypeError(
            f"under start_method={start_method!r} (or persistent=True) the kernel and "
            f"the target are pickled to reach the workers, and this one cannot be "
            f"({type(exc).__name__}: {exc}). Arrays allocated by the context travel as "
            "shared memory; other objects must be picklable (cloudpickle). Use "
            "start_method='fork' for anything else"
        ) from exc
    if warm_block and (not encoded.complete or encoded.copies):
        return None
    if encoded.foreign:
        how = "persistent=True" if persistent else f"start_method={start_method!r}"
        raise TypeError(
            f"under {how} the map is pickled to workers started before it, and it "
            f"refers to {', '.join(encoded.foreign)}: shared memory that pashmap did not "
            "allocate, which would reach the workers as a copy, so the kernel's writes "
            "to it would be lost. Write into an array of this context instead "
            "(ctx.zeros(...), then copy it into the file or segment), or map with "
            "ProcessContext(start_method='fork') without persistent=True, whose workers "
            "are forked at each map and share the mapping"
        )
    if encoded.copies:
        warn_about_copies()
    return encoded


def warn_about_copies() -> None:
    """Warn that a map pickled for workers holds arrays only forked workers share."""
    warnings.warn(
        "an array allocated by a fork ProcessContext (anonymous shared memory, which only "
        "forked workers inherit) reaches these workers as a copy: their writes to it are "
        "lost. Allocate it with the context that runs the map (ctx.zeros(...), or "
        "pm.Accumulator(..., context=ctx))",
        NotSharedWarning,
        stacklevel=user_stacklevel(),
    )
