"""pashmap-shm: thread and process contexts for pashmap, with shared-memory arrays.

Installing this package makes two contexts available by name, with no import needed:

```python
import pashmap as pm

pm.set_default_context("processes", num_workers=4)
out = pm.zeros(len(data))       # in shared memory

def kernel(worker_id, index, value):
    out[index] = 3 * value       # written by a forked worker, seen by the caller

pm.map(kernel, data)
```

* :class:`ProcessContext` (``'processes'``) forks its workers at each map, so kernels
  and their inputs need no pickling; arrays it allocates live in shared memory. With
  ``start_method='forkserver'``/``'spawn'`` or ``persistent=True`` (warm workers) the
  kernel travels pickled and the arrays as handles to the same shared memory.
* :class:`ThreadContext` (``'threads'``) runs the kernel in threads; best for kernels
  that release the GIL.

Importing this package is cheap: the contexts are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pashmap_shm._version import __version__

if TYPE_CHECKING:
    from pashmap.contexts import KernelError, NotSharedWarning, RemoteTraceback
    from pashmap_shm.process import ProcessContext
    from pashmap_shm.shared_memory import cached_bytes, clear_cache, is_shared, set_cache_limit
    from pashmap_shm.thread import ThreadContext

__all__ = [
    "KernelError",
    "NotSharedWarning",
    "ProcessContext",
    "RemoteTraceback",
    "ThreadContext",
    "__version__",
    "cached_bytes",
    "clear_cache",
    "is_shared",
    "set_cache_limit",
]

_LAZY = {
    "ProcessContext": "pashmap_shm.process",
    "ThreadContext": "pashmap_shm.thread",
    "KernelError": "pashmap.contexts",
    "RemoteTraceback": "pashmap.contexts",
    "NotSharedWarning": "pashmap.contexts",
    "cached_bytes": "pashmap_shm.shared_memory",
    "clear_cache": "pashmap_shm.shared_memory",
    "is_shared": "pashmap_shm.shared_memory",
    "set_cache_limit": "pashmap_shm.shared_memory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pashmap_shm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
