"""PerWorker: a value that each worker creates once for itself, and closes at the end.

For what a kernel needs but should not rebuild at every element: an open file, a lookup
table, scratch buffers, a detector geometry. Each worker (thread or process) calls the
factory the first time its kernel asks for the value, and the teardown when it has
finished its part of the map:

```python
files = pm.PerWorker(lambda worker_id: h5py.File(path, "r"), teardown=lambda f: f.close())

def kernel(worker_id, index, value):
    out[index] = files.get()["data"][index].sum()
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pashmap.worker import current_scope

__all__ = ["PerWorker"]

T = TypeVar("T")


class PerWorker(Generic[T]):
    """A value created once per worker and map, on first use, and torn down after.

    Works under every context: under ``LocalContext`` the caller is worker 0; under
    threads each thread has its own value; under processes each worker process creates
    its own (nothing is pickled or shared).

    Args:
        factory: called as ``factory(worker_id)`` in the worker to create its value.
        teardown: called as ``teardown(value)`` in the worker when it has finished its
            part of the map (also after an error); ``None`` to do nothing.

    Raises:
        TypeError: ``factory`` or ``teardown`` is not callable.
    """

    def __init__(
        self, factory: Callable[[int], T], teardown: Callable[[T], object] | None = None
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable as factory(worker_id), got {factory!r}")
        if teardown is not None and not callable(teardown):
            raise TypeError(f"teardown must be callable as teardown(value), got {teardown!r}")
        self.factory = factory
        self.teardown = teardown

    def get(self) -> T:
        """This worker's value, created by ``factory(worker_id)`` on the first call.

        Raises:
            RuntimeError: called outside a kernel.
        """
        scope = current_scope()
        if scope is None:
            raise RuntimeError("PerWorker.get() works only inside a kernel, while a map runs it")
        key = id(self)
        try:
            value: T = scope.values[key]
        except KeyError:
            value = self.factory(scope.worker_id)
            scope.values[key] = value
            if self.teardown is not None:
                teardown = self.teardown
                scope.teardowns.append(lambda: _discard(teardown(value)))
        return value

    def __repr__(self) -> str:
        return f"PerWorker({self.factory!r}, teardown={self.teardown!r})"


def _discard(result: object) -> None:
    """Drop a teardown's return value."""
