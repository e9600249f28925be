"""pashmap: parallel map with shared-memory, zero-copy outputs.

Apply a kernel to every element of a collection, in the caller, in threads or in forked
processes, with the results written straight into arrays shared with the caller:

```python
import numpy as np
import pashmap as pm

inp = np.random.rand(100)
outp = pm.array(100)

def triple_it(worker_id, index, value):
    outp[index] = 3 * value

pm.map(triple_it, inp)
```

This module is the user's API: ``map``, ``array`` and the numpy-style helpers, the
default context (chosen by name), the options, :class:`Accumulator`, :class:`PerWorker`,
the errors to catch and the :class:`MapTarget` protocol. Context authors find their kit
in :mod:`pashmap.contexts`, target authors theirs in :mod:`pashmap.targets`.

This package (pashmap-core) holds the protocols, the local context and the module-level
API; pashmap-shm adds the ``'threads'`` and ``'processes'`` contexts, pashmap-dask the
``'dask'`` one and pashmap-xfel the European XFEL (EXtra-data) targets. Plugins are
found through entry points when first needed, so importing pashmap loads none of them.
"""

from typing import Any

from pashmap._version import __version__
from pashmap.accumulator import Accumulator
from pashmap.default import (
    array,
    empty,
    empty_like,
    full,
    full_like,
    get_default_context,
    map,
    ones,
    ones_like,
    set_default_context,
    use_context,
    zeros,
    zeros_like,
)
from pashmap.errors import (
    ContextMismatchError,
    KernelError,
    MapTimeoutError,
    MissingPluginError,
    MissingTargetPluginError,
    NotSharedWarning,
    OversubscriptionWarning,
    PashmapError,
    PashmapWarning,
    WorkerDiedError,
    WorkerError,
)
from pashmap.options import get_default_options, set_default_options
from pashmap.per_worker import PerWorker
from pashmap.registry import register_target
from pashmap.target import MapTarget
from pashmap.targets.dataarray import DataArrayTarget
from pashmap.targets.ndarray import NdarrayTarget
from pashmap.worker import current_worker_id

__all__ = [
    "Accumulator",
    "ContextMismatchError",
    "DataArrayTarget",
    "KernelError",
    "MapTarget",
    "MapTimeoutError",
    "MissingPluginError",
    "MissingTargetPluginError",
    "NdarrayTarget",
    "NotSharedWarning",
    "OversubscriptionWarning",
    "PashmapError",
    "PashmapWarning",
    "PerWorker",
    "WorkerDiedError",
    "WorkerError",
    "__version__",
    "array",
    "current_worker_id",
    "empty",
    "empty_like",
    "full",
    "full_like",
    "get_default_context",
    "get_default_options",
    "map",
    "ones",
    "ones_like",
    "register_target",
    "set_default_context",
    "set_default_options",
    "use_context",
    "zeros",
    "zeros_like",
]

# Author-facing names that earlier versions exported here; they now live in
# pashmap.contexts and pashmap.targets, and stay reachable from here for old code.
_MOVED = {
    "BaseContext": "pashmap.contexts",
    "Context": "pashmap.contexts",
    "LocalContext": "pashmap.contexts",
    "ColumnarTarget": "pashmap.targets",
    "GuidedTarget": "pashmap.targets",
    "SequenceTarget": "pashmap.targets",
    "SupportsMapTarget": "pashmap.targets",
    "TargetFactory": "pashmap.targets",
    "contiguous_ranges": "pashmap.targets",
    "ranges_of_sizes": "pashmap.targets",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'pashmap' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
