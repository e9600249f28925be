"""LocalContext: run maps in the calling thread, one element after another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from pashmap.allocation import Order, format_nbytes
from pashmap.base_context import BaseContext
from pashmap.execution import deadline_after, run_share
from pashmap.progress import progress_counts
from pashmap.shares import checked_shares
from pashmap.target import MapTarget
from pashmap.worker import worker_scope

__all__ = ["LocalContext"]

R = TypeVar("R")


class LocalContext(BaseContext):
    """Run in the caller: no workers, no parallelism, no shared memory needed.

    The initial default context. ``worker_id`` is always 0 and arrays are ordinary numpy
    arrays. Useful for debugging (breakpoints and tracebacks work as usual), for small
    inputs, and as the baseline that parallel contexts are measured against.
    Exceptions raised by the kernel propagate unchanged and stop the map.

    Args:
        num_workers: accepted for symmetry with the parallel contexts; must be 1 (or
            ``None``).

    Raises:
        ValueError: ``num_workers`` is given and is not 1.
    """

    def __init__(self, num_workers: int | None = None) -> None:
        if num_workers not in (None, 1):
            raise ValueError(
                f"LocalContext runs in the caller and has exactly 1 worker, got "
                f"num_workers={num_workers!r}; use 'threads' or 'processes' (pashmap-shm) "
                "to run in parallel"
            )

    @property
    def num_workers(self) -> int:
        """Always 1."""
        return 1

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any], order: Order) -> NDArray[Any]:
        """An ordinary ``numpy.empty`` array."""
        try:
            return np.empty(shape, dtype=dtype, order=order)
        except (MemoryError, ValueError) as exc:  # numpy: ValueError when beyond intp
            raise MemoryError(
                f"cannot allocate {format_nbytes(shape, dtype)} for an array of shape "
                f"{shape} {dtype}: {exc}"
            ) from exc

    def run(
        self,
        kernel: Callable[..., R],
        target: MapTarget[Any],
        /,
        *,
        progress: bool = False,
        timeout: float | None = None,
        **options: Any,
    ) -> list[R]:
        """Call the kernel on every entry in index order, in the calling thread.

        Args:
            kernel: the function to apply.
            target: the map target.
            progress: show a progress bar (needs tqdm).
            timeout: seconds after which no further element is started and
                :class:`~pashmap.MapTimeoutError` is raised (an element that is already
                running is not interrupted).

        Returns:
            The kernel's return values in index order.

        Raises:
            TypeError: an unknown option.
            MapTimeoutError: the timeout passed.
        """
        if options:
            raise TypeError(
                f"LocalContext.map() got unexpected option(s): {', '.join(sorted(options))}; "
                "the options are progress and timeout"
            )
        deadline = deadline_after(timeout)
        results: list[R] = []
        with (
            worker_scope(0, parallel=False, context=self),
            progress_counts(self, target, progress) as counts,
        ):
            # With a progress bar, shares of about 1 % let the bar move as the map goes.
            shares = target.split(100 if counts is not None else 1)
            for share in checked_shares(shares, target, "split(n)"):
                results.extend(
                    run_share(kernel, 0, target, share, counts=counts, deadline=deadline)
                )
        return results
