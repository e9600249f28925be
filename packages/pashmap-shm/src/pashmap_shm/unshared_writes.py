"""Spot kernels that write to arrays a forked worker cannot share with the caller.

The classic pitfall of process-based maps: the kernel writes into an ordinary numpy
array (``out = np.zeros(n)``), each forked worker writes into its own copy-on-write copy,
and the caller's array stays untouched -- silently. Before forking, the kernel's source
is read to find the variables it writes into (``out[i] = ...``, ``out[i] += ...``,
``np.copyto(out, ...)``, ``f(..., out=out)``, ``out.fill(...)``); each one that is a
global or a closure variable holding a writable numpy array outside shared memory gets a
:class:`NotSharedWarning` naming it.

The check looks at the kernel's own code only (not at functions it calls) and needs its
source; without source it stays silent rather than guess.
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

from pashmap_shm.shared_memory import is_shared

__all__ = ["NotSharedWarning", "unshared_written_arrays", "warn_about_unshared_writes"]

# Methods and functions that write into the array they are given (first argument).
_WRITING_METHODS = frozenset(
    {"fill", "sort", "put", "itemset", "partition", "resize", "setfield", "__setitem__"}
)
_WRITING_FUNCTIONS = frozenset({"copyto", "put", "place", "putmask", "fill_diagonal", "at"})
_OWN_PACKAGES = ("pashmap.", "pashmap_shm.", "contextlib")


class NotSharedWarning(UserWarning):
    """A kernel run in worker processes writes to an array that is not in shared memory.

    Each worker would write into its own copy, and the caller would never see the
    writes. Allocate the array with the context (``pm.array``, ``pm.zeros``, ...
    while the process context is the default, or ``ctx.array``), or copy an existing
    array into shared memory with ``pm.array(fill=existing)``.
    """


def warn_about_unshared_writes(kernel: Callable[..., Any]) -> None:
    """Warn with :class:`NotSharedWarning` for each array the kernel would write in vain.

    Args:
        kernel: the kernel about to be run in forked workers.
    """
    names = unshared_written_arrays(kernel)
    if not names:
        return
    label = getattr(kernel, "__qualname__", None) or type(kernel).__name__
    for name in names:
        warnings.warn(
            f"the kernel {label} writes to {name!r}, a numpy array that is not in shared "
            f"memory: every worker process writes into its own copy and the caller never "
            f"sees the writes. Allocate it with pm.array()/pm.zeros() (or ctx.array()) while "
            f"the process context is in use, or copy it into shared memory with "
            f"{name} = pm.array(fill={name})",
            NotSharedWarning,
            stacklevel=_caller_stacklevel(),
        )


def unshared_written_arrays(kernel: Callable[..., Any]) -> list[str]:
    """The names of writable, unshared numpy arrays that ``kernel`` writes into.

    Args:
        kernel: a function, a lambda, a ``functools.partial`` or a bound method.

    Returns:
        The variable names (globals or closure variables of the kernel), sorted; empty
        when nothing is wrong or the kernel's source is not available.
    """
    function = _unwrap(kernel)
    if function is None:
        return []
    code = function.__code__
    written = _written_names(code)
    if not written:
        return []
    found = []
    for name, value in _resolve(function, written):
        if (
            isinstance(value, np.ndarray)
            and value.flags.writeable
            and value.size
            and not is_shared(value)
        ):
            found.append(name)
    return sorted(found)


def _unwrap(kernel: Callable[..., Any]) -> types.FunctionType | None:
    seen = 0
    candidate: Any = kernel
    while seen < 10:
        seen += 1
        if isinstance(candidate, functools.partial):
            candidate = candidate.func
        elif isinstance(candidate, types.MethodType):
            candidate = candidate.__func__
        elif isinstance(candidate, types.FunctionType):
            return candidate
        else:
            return None
    return None


def _resolve(function: types.FunctionType, names: frozenset[str]) -> Iterator[tuple[str, Any]]:
    """Yield ``(name, value)`` for each name that is a closure variable or a global."""
    code = function.__code__
    local = set(code.co_varnames)
    cells = dict(zip(code.co_freevars, function.__closure__ or (), strict=False))
    for name in names:
        if name in cells:
            try:
                yield name, cells[name].cell_contents
            except ValueError:  # an empty cell
                continue
        elif name not in local and name in function.__globals__:
            yield name, function.__globals__[name]


@functools.lru_cache(maxsize=256)
def _written_names(code: types.CodeType) -> frozenset[str]:
    """The root names of everything the code's source writes into (cached per code)."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        return frozenset()
    tree = _parse(source)
    if tree is None:
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_stored_roots(target))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            if isinstance(node.target, ast.Name) and isinstance(node, ast.AugAssign):
                names.add(node.target.id)  # arr += 1 on a global/nonlocal array
            else:
                names.update(_stored_roots(node.target))
        elif isinstance(node, ast.Call):
            names.update(_call_roots(node))
    return frozenset(names)


def _parse(source: str) -> ast.AST | None:
    """Parse a function's source; a lambda's is its whole line, which may not parse."""
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    # A lambda inside a call spread over several lines: try its line alone, as an
    # expression, trimming trailing characters until it parses.
    first = source.splitlines()[0].strip() if source.strip() else ""
    start = first.find("lambda")
    if start < 0:
        return None
    text = first[start:]
    while text:
        try:
            return ast.parse(text, mode="eval")
        except SyntaxError:
            text = text[:-1]
    return None


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _stored_roots(target: ast.expr) -> Iterator[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _stored_roots(element)
    elif isinstance(target, ast.Subscript) or (
        isinstance(target, ast.Attribute) and isinstance(target.value, ast.Subscript)
    ):
        name = _root_name(target)
        if name is not None:
            yield name


def _call_roots(call: ast.Call) -> Iterator[str]:
    for keyword in call.keywords:
        if keyword.arg == "out":
            values = keyword.value.elts if isinstance(keyword.value, ast.Tuple) else [keyword.value]
            for value in values:
                name = _root_name(value)
                if name is not None:
                    yield name
    function = call.func
    if isinstance(function, ast.Attribute):
        if function.attr in _WRITING_METHODS:
            name = _root_name(function.value)
            if name is not None:
                yield name
        if function.attr in _WRITING_FUNCTIONS and call.args:
            name = _root_name(call.args[0])
            if name is not None:
                yield name


def _caller_stacklevel() -> int:
    """The stacklevel that points a warning at the user's ``map`` call."""
    frame: types.FrameType | None = sys._getframe(2)  # 1 is the warn() caller
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module == "pashmap" or module.startswith(_OWN_PACKAGES)):
            return level
        frame = frame.f_back
        level += 1
    return level
