"""The arrays a kernel names, and a warning for writes that cannot reach the caller.

On a cluster a kernel writes into copies: only the context's arrays travel back. A
kernel that writes into an ordinary numpy array of the caller (``out = np.zeros(n)``)
writes in vain, so it gets the :class:`~pashmap.NotSharedWarning` it gets under
``'processes'``; the kit's :func:`pashmap.contexts.warn_about_lost_writes` finds such
writes in the kernel's source.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from pashmap.contexts import NotSharedWarning, warn_about_lost_writes

__all__ = ["NotSharedWarning", "array_names", "warn_about_writes_in_vain"]

_ADVICE = (
    "Allocate it with pm.array()/pm.zeros() (or ctx.array()) while the dask context is "
    "in use, or copy it: {name} = ctx.array(fill={name})"
)


def warn_about_writes_in_vain(
    kernel: Callable[..., Any], owner: Callable[[Any], object | None]
) -> None:
    """Warn for each ordinary numpy array the kernel writes into (not the context's).

    Args:
        kernel: the kernel about to run on the cluster.
        owner: the context's lookup of the arrays it allocated (``None`` for others).
    """
    warn_about_lost_writes(
        kernel,
        lambda array: owner(array) is not None,
        where="share (on a Dask worker)",
        advice=_ADVICE,
    )


def _namespace(kernel: Callable[..., Any]) -> dict[str, Any] | None:
    """The values the kernel can name from outside itself (globals, closure, ``self``)."""
    bound: dict[str, Any] = {}
    function: Any = kernel
    for _ in range(10):
        if isinstance(function, functools.partial):
            function = function.func
        elif isinstance(function, types.MethodType):
            bound["self"] = function.__self__
            function = function.__func__
        else:
            break
    if not isinstance(function, types.FunctionType):
        return None
    code = function.__code__
    names: dict[str, Any] = {}
    for name in _global_names(code):
        if name in function.__globals__:
            names[name] = function.__globals__[name]
    for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
        try:
            names[name] = cell.cell_contents
        except ValueError:
            continue
    names.update(bound)
    return names


def _global_names(code: types.CodeType) -> frozenset[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return frozenset(names)


def array_names(kernel: Callable[..., Any]) -> dict[int, str]:
    """``id(array) -> name`` for the arrays the kernel names (also ``self.out``)."""
    found = _namespace(kernel)
    if found is None:
        return {}
    names: dict[int, str] = {}
    for name, value in found.items():
        if isinstance(value, np.ndarray):
            names.setdefault(id(value), name)
            continue
        partials = getattr(value, "partials", None)  # an Accumulator
        if isinstance(partials, np.ndarray):
            names.setdefault(id(partials), name)
        if not isinstance(value, (types.ModuleType, type, types.FunctionType)):
            attributes = getattr(value, "__dict__", None)
            if isinstance(attributes, dict):
                for attribute, item in attributes.items():
                    if isinstance(item, np.ndarray):
                        names.setdefault(id(item), f"{name}.{attribute}")
    return names
