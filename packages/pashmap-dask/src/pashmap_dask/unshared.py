"""The arrays a kernel names, and a warning for writes that cannot reach the caller.

On a cluster a kernel writes into copies: only the context's arrays travel back. A
kernel that writes into an ordinary numpy array of the caller (``out = np.zeros(n)``)
writes in vain, so it gets the :class:`NotSharedWarning` it gets under ``'processes'``.
The writes are found in the kernel's own source (``out[i] = ...``, ``out[i] += ...``,
``out=out``, ``np.copyto(out, ...)``, ``out.fill(...)``); without source, no warning.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import pashmap

__all__ = ["NotSharedWarning", "array_names", "warn_about_lost_writes"]


def _warning_class() -> type[Warning]:
    """pashmap's NotSharedWarning where it lives (core, else pashmap-shm), else ours."""
    found: type[Warning] | None = getattr(pashmap, "NotSharedWarning", None)
    if found is None:
        try:
            import pashmap_shm

            found = pashmap_shm.NotSharedWarning
        except ImportError:
            found = None
    if found is None:

        class NotSharedWarning(UserWarning):
            """A kernel writes to an array whose writes cannot reach the caller."""

        found = NotSharedWarning
    return found


NotSharedWarning = _warning_class()

_WRITING_METHODS = frozenset({"fill", "sort", "put", "itemset", "partition", "resize"})
_WRITING_FUNCTIONS = frozenset({"copyto", "put", "place", "putmask", "fill_diagonal", "at"})


def _namespace(kernel: Callable[..., Any]) -> tuple[types.FunctionType, dict[str, Any]] | None:
    """The kernel's function and the values it can name from outside itself."""
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
    return function, names


@functools.lru_cache(maxsize=256)
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
    for name, value in found[1].items():
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


def warn_about_lost_writes(
    kernel: Callable[..., Any], owner: Callable[[Any], object | None]
) -> None:
    """Warn for each ordinary numpy array the kernel writes into (not the context's)."""
    found = _namespace(kernel)
    if found is None:
        return
    function, values = found
    if not any(_may_be_lost(value, owner) for value in values.values()):
        return  # no array to look for: skip reading the source
    for name in sorted(_written_names(function.__code__)):
        value = values.get(name)
        if _may_be_lost(value, owner):
            label = getattr(kernel, "__qualname__", None) or type(kernel).__name__
            warnings.warn(
                f"the kernel {label} writes to {name!r}, a numpy array that the 'dask' "
                f"context did not allocate: each share writes into its own copy on a "
                f"worker and the caller never sees the writes. Allocate it with "
                f"pm.array()/pm.zeros() (or ctx.array()) while the dask context is in use, "
                f"or copy it: {name} = ctx.array(fill={name})",
                NotSharedWarning,
                stacklevel=_user_stacklevel(),
            )


def _may_be_lost(value: object, owner: Callable[[Any], object | None]) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.flags.writeable
        and value.size > 0
        and owner(value) is None
    )


@functools.lru_cache(maxsize=256)
def _written_names(code: types.CodeType) -> frozenset[str]:
    """The variables the code's source writes into (subscripts, out=, writing calls)."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_stored(target))
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                names.add(node.target.id)
            else:
                names.update(_stored(node.target))
        elif isinstance(node, ast.Call):
            names.update(_call_targets(node))
    return frozenset(names)


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _stored(target: ast.expr) -> Iterator[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _stored(element)
    elif isinstance(target, ast.Subscript):
        name = _root(target)
        if name is not None:
            yield name


def _call_targets(call: ast.Call) -> Iterator[str]:
    candidates: list[ast.expr] = []
    for keyword in call.keywords:
        if keyword.arg == "out":
            value = keyword.value
            candidates.extend(value.elts if isinstance(value, ast.Tuple) else [value])
    function = call.func
    if isinstance(function, ast.Attribute):
        if function.attr in _WRITING_METHODS:
            candidates.append(function.value)
        if function.attr in _WRITING_FUNCTIONS and call.args:
            candidates.append(call.args[0])
    for candidate in candidates:
        name = _root(candidate)
        if name is not None:
            yield name


def _user_stacklevel() -> int:
    """The stacklevel that points a warning at the user's ``map`` call."""
    frame: types.FrameType | None = sys._getframe(2)  # 1 is the function calling warn()
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module == "pashmap" or module.startswith(("pashmap.", "pashmap_dask."))):
            return level
        frame = frame.f_back
        level += 1
    return level
