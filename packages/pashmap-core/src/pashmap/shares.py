"""The share policy: how a parallel context cuts a target into shares for its workers.

A parallel context cuts its target into many more shares than it has workers; each
worker takes the next share (in index order) whenever it finishes one. A skewed
workload then ends with every worker busy until close to the end, instead of waiting for
the one worker that drew the expensive part.

Targets that can be cut into shares of given sizes (:class:`pashmap.targets.GuidedTarget`: the
built-in ones and pashmap-xfel's) are cut *guided*: each share is a ``1 / (4 *
num_workers)`` part of what is left, so shares start large and shrink towards the end,
down to single elements (or, for long targets, to a 256th per worker of the whole). A
worker that starts the last share finishes soon after the others, also when the last
elements cost the most: a workload whose cost ramps up linearly with the index ends
closer to the ideal time than with equal shares, and with fewer shares (measured by
benchmarks/code_figures.py). Other targets are asked for 32 equal shares per worker.
``shares=n`` asks any target for ``n`` equal shares.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pashmap.remote_exceptions import qualified_name
from pashmap.target import GuidedTarget, MapTarget

__all__ = ["GUIDED_FRACTION", "SHARES_PER_WORKER", "guided_sizes", "split_target"]

# Equal shares per worker, for targets that cannot be cut by size.
SHARES_PER_WORKER = 32
# A guided share is at most 1 / (GUIDED_FRACTION * num_workers) of what is left.
GUIDED_FRACTION = 4
# Guided shares shrink to no less than 1 / (_SMALLEST * num_workers) of the whole.
_SMALLEST = 256


def split_target(
    target: MapTarget[Any], num_workers: int, options: Mapping[str, Any], context_name: str
) -> Sequence[Any]:
    """Cut ``target`` into shares for ``num_workers`` workers.

    Args:
        target: the map target.
        num_workers: the number of workers of the context.
        options: the map options; the only one known is ``shares``, the number of equal
            shares to ask the target for. By default a :class:`pashmap.targets.GuidedTarget` is
            cut guided (:func:`guided_sizes`) and any other target into
            ``32 * num_workers`` shares. ``shares=num_workers`` gives one contiguous
            block per worker (no balancing).
        context_name: the context's class name, for error messages.

    Returns:
        The shares, in index order.

    Raises:
        TypeError: an unknown option, ``shares`` is not an integer, or the target's
            ``split`` (``split_sizes``) returned something other than a sequence of
            shares (the message names the target's class).
        ValueError: ``shares`` is smaller than 1.
    """
    unknown = set(options) - {"shares"}
    if unknown:
        raise TypeError(
            f"{context_name}.map() got unexpected option(s): {', '.join(sorted(unknown))}; "
            "the only option is shares=<number of shares to cut the target into>"
        )
    requested = options.get("shares")
    if requested is None:
        # (Attribute checks, not the runtime-protocol isinstance: this runs at every map.)
        if getattr(target, "split_sizes", None) is not None and hasattr(target, "__len__"):
            guided = cast("GuidedTarget[Any]", target)
            sized = guided.split_sizes(guided_sizes(len(guided), num_workers))
            return checked_shares(sized, target, "split_sizes(sizes)")
        count = SHARES_PER_WORKER * num_workers
    else:
        if isinstance(requested, bool):
            raise TypeError(f"shares must be a positive integer, got {requested!r}")
        try:
            count = operator.index(requested)
        except TypeError:
            raise TypeError(f"shares must be a positive integer, got {requested!r}") from None
        if count < 1:
            raise ValueError(f"shares must be at least 1, got {count}")
    return checked_shares(target.split(count), target, "split(n)")


def checked_shares(shares: Any, target: object, method: str) -> Sequence[Any]:
    """``shares`` if it is a sequence (``len()`` and indexing), as contexts need it.

    Raises:
        TypeError: it is not; the message names the target's class and ``method``.
    """
    kind = type(shares)
    if kind is list or kind is tuple:  # (the usual answer, at every map)
        return cast("Sequence[Any]", shares)
    if hasattr(kind, "__len__") and hasattr(kind, "__getitem__") and kind not in (str, bytes):
        return cast("Sequence[Any]", shares)
    text = repr(shares)
    raise TypeError(
        f"{qualified_name(type(target))}.{method} must return a sequence of shares (a list "
        f"or tuple, in index order), got {kind.__name__} "
        f"{text if len(text) <= 60 else text[:57] + '...'}; see help(pashmap.MapTarget)"
    )


@functools.lru_cache(maxsize=64)  # (maps of the same length repeat)
def guided_sizes(length: int, num_workers: int) -> tuple[int, ...]:
    """The sizes of guided shares of ``length`` elements for ``num_workers`` workers.

    Each share takes ``1 / (GUIDED_FRACTION * num_workers)`` of the elements left
    (rounded up), but no fewer than ``length / (256 * num_workers)`` (rounded up) and no
    fewer than one, so the sizes shrink from the first share to the last.

    Args:
        length: the number of elements, ``>= 0``.
        num_workers: the number of workers, ``>= 1``.

    Returns:
        The sizes, in index order, adding up to ``length`` (empty when it is 0).
        Remembered for the last few lengths (hence a tuple).
    """
    parts = GUIDED_FRACTION * num_workers
    smallest = max(1, math.ceil(length / (_SMALLEST * num_workers)))
    sizes = []
    left = length
    while left > 0:
        size = min(left, max(smallest, -(-left // parts)))
        sizes.append(size)
        left -= size
    return tuple(sizes)
