"""The kit for writing a context: everything any parallel context needs, in one place.

A context decides where a map runs and where its output arrays live. The
:class:`Context` protocol is the whole contract; :class:`BaseContext` meets it given
``num_workers``, ``allocate(shape, dtype, order)`` and ``run(kernel, target,
**options)``. The rest of the kit is what every parallel context needs, whatever its
workers are (threads, processes, machines):

* the share policy: :func:`split_target` cuts a target into shares, guided
  (:func:`guided_sizes`) when the target can be cut by size, else
  :data:`SHARES_PER_WORKER` equal shares per worker, or ``shares=n`` as asked;
* the worker count: :func:`available_cpus` (CPU affinity, cgroup CPU quota and the
  ``PASHMAP_MAX_CPUS`` override) and :func:`resolve_num_workers` (checks the argument);
* the worker scope: each worker runs its part of a map inside :func:`worker_scope`,
  which makes :class:`~pashmap.PerWorker` and :attr:`pashmap.Accumulator.local` work;
  :func:`in_worker` says that a nested map must run serially; the scope knows the
  context whose map it runs (:func:`mapping_context`, recorded by
  :meth:`BaseContext.map` with :class:`map_running`), so an accumulator made for
  another context is refused instead of losing its writes;
* running a share: :func:`run_share` / :func:`share_runner` call the kernel the cheapest
  way, count progress, stop at a deadline (:func:`deadline_after`) and between two
  elements when the map must end early (:class:`StopSignal`); :func:`run_serially`
  runs a nested map in the worker that started it;
* progress: :func:`progress_counts` draws a tqdm bar from per-worker counters that the
  context allocates where its workers can write them;
* exception transport: :func:`encode_exception` in the worker, :func:`decode_exception`
  in the caller, re-raising the kernel's exception with its type and the remote traceback
  (:class:`RemoteTraceback`), or a :class:`KernelError` when it cannot travel;
* lost writes: a context whose workers do not share the caller's memory calls
  :func:`warn_about_lost_writes` before a map, with its own test of which arrays reach
  the caller; kernels writing elsewhere get a :class:`NotSharedWarning` naming the array
  (:func:`lost_writes` gives the names, :func:`outside_values` what the kernel can
  name; :func:`user_stacklevel` points any warning of a context at the user's code).

A worker that lives across maps runs :func:`reset_worker_state` before each map, so
that packages can drop what it kept of earlier maps (:func:`register_worker_reset`).

Register a context class in the ``pashmap.contexts`` entry-point group to make it
available by name (:func:`context_names` lists them, :func:`create_context` makes one),
and prove it with the conformance suite in :mod:`pashmap.testing`.
See the "Writing a context" page of the documentation for a worked example.
"""

from pashmap.allocation import Allocator, Order, ShapeLike, allocate_array
from pashmap.base_context import BaseContext
from pashmap.context import Context
from pashmap.errors import KernelError, NotSharedWarning
from pashmap.execution import StopSignal, deadline_after, run_serially, run_share, share_runner
from pashmap.kernel_writes import (
    lost_writes,
    outside_values,
    user_stacklevel,
    warn_about_lost_writes,
)
from pashmap.local import LocalContext
from pashmap.machine import available_cpus, available_memory, format_bytes, resolve_num_workers
from pashmap.options import COMMON_OPTIONS
from pashmap.progress import ProgressBar, progress_counts
from pashmap.registry import context_names, create_context
from pashmap.remote_exceptions import RemoteTraceback, decode_exception, encode_exception
from pashmap.shares import GUIDED_FRACTION, SHARES_PER_WORKER, guided_sizes, split_target
from pashmap.worker import (
    WorkerScope,
    current_scope,
    current_worker_id,
    in_worker,
    map_running,
    mapping_context,
    mark_process_as_worker,
    set_process_scope,
    tear_down,
    worker_scope,
)
from pashmap.worker_reset import register_worker_reset, reset_worker_state

__all__ = [
    "COMMON_OPTIONS",
    "GUIDED_FRACTION",
    "SHARES_PER_WORKER",
    "Allocator",
    "BaseContext",
    "Context",
    "KernelError",
    "LocalContext",
    "NotSharedWarning",
    "Order",
    "ProgressBar",
    "RemoteTraceback",
    "ShapeLike",
    "StopSignal",
    "WorkerScope",
    "allocate_array",
    "available_cpus",
    "available_memory",
    "context_names",
    "create_context",
    "current_scope",
    "current_worker_id",
    "deadline_after",
    "decode_exception",
    "encode_exception",
    "format_bytes",
    "guided_sizes",
    "in_worker",
    "lost_writes",
    "map_running",
    "mapping_context",
    "mark_process_as_worker",
    "outside_values",
    "progress_counts",
    "register_worker_reset",
    "reset_worker_state",
    "resolve_num_workers",
    "run_serially",
    "run_share",
    "set_process_scope",
    "share_runner",
    "split_target",
    "tear_down",
    "user_stacklevel",
    "warn_about_lost_writes",
    "worker_scope",
]
