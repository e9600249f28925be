"""The exception family raised by pashmap and its plugins.

Every error that pashmap raises on purpose derives from :class:`PashmapError`, so
``except pm.PashmapError`` catches all of them. Where a built-in exception type is the
natural one (a bad argument, a missing package), the pashmap class derives from it too,
so code written against the built-in type keeps working.
"""

from __future__ import annotations

__all__ = [
    "ContextMismatchError",
    "KernelError",
    "MapTimeoutError",
    "MissingPluginError",
    "MissingTargetPluginError",
    "NotSharedWarning",
    "OversubscriptionWarning",
    "PashmapError",
    "PashmapWarning",
    "WorkerDiedError",
    "WorkerError",
]


class PashmapError(Exception):
    """Base class of all errors raised by pashmap."""


class PashmapWarning(UserWarning):
    """Base class of the warnings pashmap and its plugins give."""


class NotSharedWarning(PashmapWarning):
    """A kernel writes to a numpy array whose writes cannot reach the caller.

    Under a context whose workers do not run in the caller's memory (worker processes,
    a Dask cluster), each worker writes into its own copy of such an array and the
    caller never sees the writes. Allocate the array with the context (``pm.array``,
    ``pm.zeros``, ... while that context is the default, or ``ctx.array``), or copy an
    existing array with ``pm.array(fill=existing)``. Contexts find such writes with
    :func:`pashmap.contexts.warn_about_lost_writes`.
    """


class OversubscriptionWarning(PashmapWarning):
    """A context was asked for far more workers than the process has CPUs to run them.

    Given once, when the context is made (see
    :func:`pashmap.contexts.resolve_num_workers`): the workers then take turns on the
    CPUs, and the map is slower than with one worker per CPU (``num_workers=None``).
    Silence it with ``warnings.filterwarnings("ignore", category=OversubscriptionWarning)``
    when that is what you want (e.g. threads that mostly wait for I/O).
    """


class MissingPluginError(PashmapError, ImportError, ValueError):
    """A context name or a target type needs a pashmap package that is not installed.

    The message names the package and the ``pip install`` line that provides it.
    It is an :class:`ImportError` (something is not installed) and a :class:`ValueError`
    (the name passed in cannot be used as things are).

    Attributes:
        package: the distribution to install, e.g. ``"pashmap-shm"``.
    """

    def __init__(self, message: str, *, package: str) -> None:
        super().__init__(message)
        self.package = package


class MissingTargetPluginError(MissingPluginError, TypeError):
    """An object to map over needs a target plugin that is not installed.

    Also a :class:`TypeError`, like every other "cannot map over this type" error.
    """


class ContextMismatchError(PashmapError, RuntimeError):
    """An object made for one context was used in a map on another.

    An :class:`~pashmap.Accumulator` keeps its partial results where the workers of the
    context it was made for can write them (shared memory for ``'processes'``, plain
    memory for ``'local'`` and ``'threads'``); under another context the writes could be
    lost or land in the wrong slice. The message names both contexts. Create the object
    with the context you map with (``context=ctx``, or after
    :func:`~pashmap.set_default_context`).
    """


class MapTimeoutError(PashmapError, TimeoutError):
    """A map did not finish within its ``timeout``; it was cancelled and its workers stopped.

    A :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    """


class WorkerError(PashmapError):
    """A worker of a parallel context failed other than by raising in the kernel.

    Exceptions raised by the kernel itself reach the caller with their own type; this
    family is for failures of the machinery (a worker that died, a broken pool).
    """


class KernelError(PashmapError):
    """A kernel raised, in a worker, an exception that could not reach the caller as itself.

    Raised instead of the original exception when that exception cannot be pickled (or
    unpickled in the caller); the message names its type and text, and the chained
    :class:`~pashmap.contexts.RemoteTraceback` shows where it was raised.

    Attributes:
        type_name: the qualified name of the original exception type.
    """

    def __init__(self, message: str, *, type_name: str) -> None:
        super().__init__(message)
        self.type_name = type_name


class WorkerDiedError(WorkerError):
    """A worker process ended abnormally during a map (killed, crashed or exited).

    Attributes:
        worker_id: the worker's id within the map, ``0 <= worker_id < num_workers``.
        pid: the process id of the worker.
        exitcode: the exit status if the process exited, else ``None``.
        signal: the number of the signal that ended the process, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        worker_id: int,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: int | None = None,
    ) -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal
