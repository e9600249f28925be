"""Exception transport: a kernel's exception carried across a process or machine boundary.

A worker that catches the kernel's exception encodes it (:func:`encode_exception`) and
sends the bytes to the caller, which rebuilds it (:func:`decode_exception`) and raises it
with its original type, the worker's traceback chained as its ``__cause__``
(:class:`RemoteTraceback`). An exception that cannot be pickled, or not unpickled in the
caller, arrives as a :class:`~pashmap.KernelError` that names its type and message.
Encoding never raises, whatever the exception does in ``__reduce__`` or ``__str__``.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from collections.abc import Callable
from typing import Any

from pashmap.errors import KernelError

__all__ = ["RemoteTraceback", "decode_exception", "encode_exception", "qualified_name"]


class RemoteTraceback(Exception):  # noqa: N818 - a traceback, named as in concurrent.futures
    """The traceback of an exception raised in a worker process or on another machine.

    Chained as the ``__cause__`` of the exception re-raised in the caller, so the report
    shows where in the kernel it happened.

    Attributes:
        text: the formatted traceback, as the worker printed it.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text.rstrip()}\n"""'


def encode_exception(exc: BaseException, *, dumps: Callable[[Any], bytes] | None = None) -> bytes:
    """Serialise an exception raised in a worker; never raises.

    Args:
        exc: the exception, with its ``__traceback__``.
        dumps: how to pickle the exception itself; ``pickle.dumps`` by default. A
            context whose workers may not import the kernel's module (a cluster, a
            fork server) passes ``cloudpickle.dumps``, which pickles classes defined in
            ``__main__`` by value.

    Returns:
        Bytes for :func:`decode_exception`: a pickle of ``(pickled exception or None,
        "module.Type: message", formatted traceback)``.
    """
    try:
        if dumps is None:
            pickled: bytes | None = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            pickled = dumps(exc)
    except Exception:
        pickled = None
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        text = "(the traceback could not be formatted)"
    try:
        message = str(exc)
    except Exception:
        message = "(str() of the exception failed)"
    name = qualified_name(type(exc))
    description = f"{name}: {message}" if message else name
    return pickle.dumps((pickled, description, text), protocol=pickle.HIGHEST_PROTOCOL)


def decode_exception(
    payload: bytes, *, loads: Callable[[bytes], Any] = pickle.loads
) -> BaseException:
    """Rebuild the exception a worker sent, with its traceback chained as ``__cause__``.

    Args:
        payload: what :func:`encode_exception` returned.
        loads: how to unpickle the exception itself (``pickle.loads`` also reads what
            cloudpickle wrote, when cloudpickle is installed).

    Returns:
        The original exception (same type and arguments) when it survived pickling,
        else a :class:`~pashmap.KernelError` describing it.
    """
    pickled, description, text = pickle.loads(payload)
    exc: BaseException | None = None
    reason = "it cannot be pickled"
    if pickled is not None:
        try:
            exc = loads(pickled)
        except Exception as error:
            reason = f"it cannot be unpickled in the caller ({error!r})"
    if not isinstance(exc, BaseException):
        type_name = description.partition(":")[0]
        exc = KernelError(
            f"the kernel raised {description} in a worker; the exception itself could not "
            f"be sent to the caller because {reason}",
            type_name=type_name,
        )
    exc.__cause__ = RemoteTraceback(text)
    return exc


def qualified_name(klass: type) -> str:
    """The name of a class as pashmap's error messages give it.

    Args:
        klass: any class, e.g. ``type(obj)`` of an object a target cannot map over.

    Returns:
        ``'module.Class'`` (``'module.Outer.Inner'`` for a nested class), just
        ``'Class'`` for builtins. A class its top-level package exports is named
        from there, as users import it (``pandas.DataFrame``, not
        ``pandas.core.frame.DataFrame``), whichever module defines it.
    """
    module = klass.__module__
    if module == "builtins":
        return klass.__qualname__
    package = sys.modules.get(module.partition(".")[0])
    if package is not None and getattr(package, klass.__qualname__, None) is klass:
        module = package.__name__
    return f"{module}.{klass.__qualname__}"
