"""The default context, and the module-level functions that use it.

``pm.map``, ``pm.array``, ``pm.zeros`` and friends are the methods of whatever context is
the default at the time of the call. The default starts as a :class:`LocalContext`; change
it for the whole program with :func:`set_default_context`, or for a block with
:func:`use_context`. The default is process-wide (not per thread).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from pashmap.base_context import BaseContext
from pashmap.context import Context
from pashmap.local import LocalContext
from pashmap.target import MapTarget, SupportsMapTarget

if TYPE_CHECKING:
    import xarray
    from numpy.typing import NDArray

__all__ = [
    "array",
    "empty",
    "empty_like",
    "full",
    "full_like",
    "get_default_context",
    "map",
    "ones",
    "ones_like",
    "set_default_context",
    "use_context",
    "zeros",
    "zeros_like",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_lock = threading.RLock()
_default: Context = LocalContext()


def get_default_context() -> Context:
    """Return the context that ``pm.map``, ``pm.array`` and the other helpers use."""
    return _default


def _make_context(context: Context | str | type[Context], kwargs: dict[str, Any]) -> Context:
    if isinstance(context, str):
        from pashmap.registry import create_context

        return create_context(context, **kwargs)
    if isinstance(context, type):
        made = context(**kwargs)
        if isinstance(made, Context):
            return made
    elif isinstance(context, Context):
        if kwargs:
            raise TypeError(
                f"keyword arguments ({', '.join(sorted(kwargs))}) only apply when naming a "
                f"context, e.g. set_default_context('processes', num_workers=4); "
                f"got a {type(context).__name__} instance"
            )
        return context
    raise TypeError(
        "expected a context name such as 'local', 'threads' or 'processes', or a pashmap "
        f"Context, got {context!r}"
    )


def set_default_context(context: Context | str | type[Context], /, **kwargs: Any) -> Context:
    """Make ``context`` the default for every later ``pm.map`` and ``pm.array`` call.

    Args:
        context: a context object, a context class, or a registered name: ``'local'``
            (alias ``'serial'``), and with pashmap-shm installed ``'threads'`` and
            ``'processes'``.
        **kwargs: passed to the context's constructor when ``context`` is a name or a
            class, e.g. ``num_workers=4``.

    Returns:
        The new default context.

    Raises:
        ValueError: unknown context name (the message lists the known ones).
        MissingPluginError: the name needs a package that is not installed (the message
            says what to ``pip install``).
        TypeError: keyword arguments given along with a context object, or ``context`` is
            not a context, a context class or a name.
    """
    global _default
    made = _make_context(context, kwargs)
    with _lock:
        _default = made
    return made


@contextmanager
def use_context(context: Context | str | type[Context], /, **kwargs: Any) -> Iterator[Context]:
    """Use ``context`` as the default inside a ``with`` block, then restore the previous one.

    The previous default comes back when the block ends, also when it ends with an
    exception. A context created here from a name or a class is closed at the end.

    Examples:
        ```python
        with pm.use_context("processes", num_workers=4) as ctx:
            out = pm.zeros(len(data))      # shared memory
            pm.map(kernel, data)
        ```

    Args:
        context: as for :func:`set_default_context`.
        **kwargs: as for :func:`set_default_context`.

    Yields:
        The context in use within the block.
    """
    global _default
    made = _make_context(context, kwargs)
    with _lock:
        previous = _default
        _default = made
    try:
        yield made
    finally:
        with _lock:
            _default = previous
        if made is not context:
            made.close()


@overload
def map(kernel: Callable[[int, int, T], R], target: Sequence[T], /, **options: Any) -> list[R]: ...


@overload
def map(
    kernel: Callable[[int, int, Any], R],
    target: NDArray[Any] | xarray.DataArray,
    /,
    **options: Any,
) -> list[R]: ...


@overload
def map(
    kernel: Callable[Concatenate[int, ...], R],
    target: MapTarget[Any] | SupportsMapTarget,
    /,
    **options: Any,
) -> list[R]: ...


def map(kernel: Callable[..., R], target: object, /, **options: Any) -> list[R]:
    """Apply ``kernel`` to every element of ``target`` on the default context.

    Calls ``kernel(worker_id, *entry)`` exactly once for every entry of the target: for a
    sequence or a numpy array, ``kernel(worker_id, index, value)``. Kernels usually write
    their results into an array from :func:`pashmap.array`, which the workers share with
    the caller; return values are collected too.

    Examples:
        ```python
        out = pm.array(len(inp))

        def triple_it(worker_id, index, value):
            out[index] = 3 * value

        pm.map(triple_it, inp)
        ```

    Args:
        kernel: the function to apply, called as ``kernel(worker_id, *entry)``.
        target: a sequence, numpy array, xarray DataArray, an object of a type registered
            by a plugin (EXtra-data runs with pashmap-xfel), an object with
            ``__pashmap_target__()``, or a :class:`~pashmap.MapTarget`.
        **options: every context takes ``progress`` and ``timeout``:

            * ``progress=True`` shows a progress bar (tqdm) fed by counters the workers
              bump as they finish elements (``True`` or ``False`` only: anything else
              raises ``TypeError``);
            * ``timeout=<seconds>`` stops the map when it runs longer and raises
              :class:`~pashmap.MapTimeoutError` (a ``TimeoutError``).

            Both default to :func:`pashmap.set_default_options`. The parallel contexts
            also take ``shares=<n>``, the number of equal shares to cut the target
            into; other options belong to the context kind (see its documentation).

    Returns:
        The kernel's return values, as a list in index order.

    Raises:
        TypeError: the kernel is not callable, the target cannot be mapped over (the
            message says what can), an unknown option was given, or ``progress`` is
            not ``True`` or ``False``.
        MapTimeoutError: the map ran longer than ``timeout``.
        WorkerDiedError: a worker process died during the map.
        Exception: whatever the kernel raised, with its original type.
    """
    return _default.map(kernel, target, **options)


def _forward(method: Callable[Concatenate[BaseContext, P], R]) -> Callable[P, R]:
    """Make a module-level function calling ``method`` on the default context.

    Its signature and ``help()`` are the method's without ``self``; its docstring is the
    method's, which names the default context's method it calls.
    """
    name = method.__name__

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        context = _default
        bound: Callable[P, R] | None = getattr(context, name, None)
        if bound is None:  # a Context without this helper: use the shared code
            return method(context, *args, **kwargs)  # type: ignore[arg-type]
        return bound(*args, **kwargs)

    signature = inspect.signature(method)
    del call.__wrapped__
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    call.__qualname__ = name
    call.__module__ = "pashmap"
    call.__doc__ = (method.__doc__ or "").replace(
        "that this context's workers", "that the default context's workers"
    )
    return call


array = _forward(BaseContext.array)
empty = _forward(BaseContext.empty)
zeros = _forward(BaseContext.zeros)
ones = _forward(BaseContext.ones)
full = _forward(BaseContext.full)
empty_like = _forward(BaseContext.empty_like)
zeros_like = _forward(BaseContext.zeros_like)
ones_like = _forward(BaseContext.ones_like)
full_like = _forward(BaseContext.full_like)
