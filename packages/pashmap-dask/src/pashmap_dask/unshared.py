"""The arrays a kernel names, and a warning for writes that cannot reach the caller.

On a cluster a kernel writes into copies: only the context's arrays travel back. A
kernel that writes into an ordinary numpy array of the caller (``out = np.zeros(n)``)
writes in vain, so it gets the :class:`~pashmap.NotSharedWarning` it gets under
``'processes'``; the kit's :func:`pashmap.contexts.warn_about_lost_writes` finds such
writes in the kernel's source.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

from pashmap.contexts import NotSharedWarning, outside_values, warn_about_lost_writes

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


def array_names(kernel: Callable[..., Any]) -> dict[int, str]:
    """``id(array) -> name`` for the arrays the kernel names (also ``self.out``)."""
    names: dict[int, str] = {}
    for name, value in outside_values(kernel).items():
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
