"""pashmap-dask: run pashmap maps on a Dask distributed cluster, across many nodes.

Installing this package makes the ``'dask'`` context available by name, with no import
needed:

```python
import pashmap as pm

pm.set_default_context("dask")  # the current Client, DASK_SCHEDULER_ADDRESS,
                                # or an embedded LocalCluster
out = pm.zeros(len(data))       # an ordinary numpy array in the caller

def kernel(worker_id, index, value):
    out[index] = 3 * value      # written on a Dask worker, seen here

pm.map(kernel, data)
```

Dask schedules, retries and moves the data; :class:`DaskContext` cuts the map into
shares, sends the kernel once per worker, and writes back into the caller's arrays the
elements each share wrote. Importing this package is cheap: Dask is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pashmap_dask._version import __version__

if TYPE_CHECKING:
    from pashmap_dask.cluster import ConnectionFailedError
    from pashmap_dask.context import SHARES_PER_THREAD, DaskContext
    from pashmap_dask.writes import ConflictingWritesError

__all__ = [
    "SHARES_PER_THREAD",
    "ConflictingWritesError",
    "ConnectionFailedError",
    "DaskContext",
    "__version__",
]

_LAZY = {
    "DaskContext": "pashmap_dask.context",
    "SHARES_PER_THREAD": "pashmap_dask.context",
    "ConflictingWritesError": "pashmap_dask.writes",
    "ConnectionFailedError": "pashmap_dask.cluster",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pashmap_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
