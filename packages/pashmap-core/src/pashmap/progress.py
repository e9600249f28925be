"""Progress bars fed by a counter the workers bump in shared memory.

The workers count the elements they finish in their own slot of a small array allocated
by the context (so under ``'processes'`` it is shared memory); a thread in the caller reads
the total a few times a second and moves a tqdm bar (``tqdm.auto``, so it renders in
Jupyter too). Nothing is sent between processes per element.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pashmap.allocation import Allocator

__all__ = ["ProgressBar", "progress_counts"]

_INTERVAL = 0.1  # seconds between updates of the bar


class ProgressBar:
    """A tqdm bar in the caller, fed by per-worker counters the workers write.

    Use as a context manager around the map; pass :attr:`counts` to the workers, which
    add to ``counts[worker_id]`` as they finish elements.

    Args:
        context: allocates the counters where the workers can write them.
        total: the number of elements, if known.

    Raises:
        ImportError: tqdm is not installed (the message says how to install it).
    """

    def __init__(self, context: Allocator, total: int | None) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:
            raise ImportError(
                "progress=True draws its bar with tqdm, which is not installed: pip install tqdm"
            ) from exc
        self.counts: NDArray[np.int64] = context.allocate(
            (context.num_workers,), np.dtype(np.int64), "C"
        )
        self.counts[:] = 0
        self._bar: Any = tqdm(total=total, unit="el", desc="pashmap", leave=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="pashmap-progress", daemon=True)

    def _follow(self) -> None:
        while not self._stop.wait(_INTERVAL):
            self._update()

    def _update(self) -> None:
        done = int(self.counts.sum())
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._update()
        self._bar.close()

    @property
    def done(self) -> int:
        """Elements finished so far, as counted by the workers."""
        return int(self.counts.sum())


@contextmanager
def progress_counts(
    context: Allocator, target: object, enabled: bool
) -> Iterator[NDArray[np.int64] | None]:
    """A progress bar for a map over ``target`` when ``enabled``; yields its counters.

    Yields ``None`` when not enabled, so a context can pass the result straight to
    :func:`pashmap.execution.run_share`.
    """
    if not enabled:
        yield None
        return
    total = len(target) if hasattr(target, "__len__") else None
    with ProgressBar(context, total) as bar:
        yield bar.counts
