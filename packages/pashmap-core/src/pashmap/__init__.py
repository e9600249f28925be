"""pashmap: parallel map with shared-memory, zero-copy outputs.

Apply a kernel to every element of a collection, in the caller, in threads or in forked
processes, with the results written straight into arrays shared with the caller::

    import numpy as np
    import pashmap as pm

    inp = np.random.rand(100)
    outp = pm.array(100)

    def triple_it(worker_id, index, value):
        outp[index] = 3 * value

    pm.map(triple_it, inp)

This package (pashmap-core) holds the protocols, the local context and the module-level
API; pashmap-shm adds the ``'threads'`` and ``'processes'`` contexts and pashmap-xfel the
European XFEL (EXtra-data) targets. Plugins are found through entry points when first
needed, so importing pashmap loads none of them.
"""

from pashmap._version import __version__
from pashmap.accumulator import Accumulator
from pashmap.base_context import BaseContext
from pashmap.context import Context
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
    MapTimeoutError,
    MissingPluginError,
    MissingTargetPluginError,
    PashmapError,
    WorkerDiedError,
    WorkerError,
)
from pashmap.local import LocalContext
from pashmap.options import get_default_options, set_default_options
from pashmap.per_worker import PerWorker
from pashmap.target import (
    ColumnarTarget,
    GuidedTarget,
    MapTarget,
    SupportsMapTarget,
    TargetFactory,
    contiguous_ranges,
    ranges_of_sizes,
)
from pashmap.targets.dataarray import DataArrayTarget
from pashmap.targets.ndarray import NdarrayTarget
from pashmap.targets.sequence import SequenceTarget
from pashmap.worker import current_worker_id

__all__ = [
    "Accumulator",
    "BaseContext",
    "ColumnarTarget",
    "Context",
    "DataArrayTarget",
    "GuidedTarget",
    "LocalContext",
    "MapTarget",
    "MapTimeoutError",
    "MissingPluginError",
    "MissingTargetPluginError",
    "NdarrayTarget",
    "PashmapError",
    "PerWorker",
    "SequenceTarget",
    "SupportsMapTarget",
    "TargetFactory",
    "WorkerDiedError",
    "WorkerError",
    "__version__",
    "array",
    "contiguous_ranges",
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
    "ranges_of_sizes",
    "set_default_context",
    "set_default_options",
    "use_context",
    "zeros",
    "zeros_like",
]
