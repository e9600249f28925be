"""How a worker runs the kernel over one share of a target.

Shared by every context, so that the cheapest way to call the kernel is used everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import repeat, starmap
from typing import Any, TypeVar

from pashmap.target import MapTarget

__all__ = ["run_share"]

R = TypeVar("R")


def run_share(
    kernel: Callable[..., R], worker_id: int, target: MapTarget[Any], share: Any
) -> list[R]:
    """Call ``kernel(worker_id, *entry)`` for every entry of one share, in order.

    Uses ``target.iterate_columns(share)`` when the target has it (no tuple per
    element), else ``target.iterate(share)``.

    Args:
        kernel: the function to call.
        worker_id: passed as the kernel's first argument.
        target: the MapTarget the share came from.
        share: one of ``target.split(n)``.

    Returns:
        The kernel's return values, in order.
    """
    iterate_columns = getattr(target, "iterate_columns", None)
    if iterate_columns is not None:
        return list(map(kernel, repeat(worker_id), *iterate_columns(share)))
    return list(starmap(partial(kernel, worker_id), target.iterate(share)))
