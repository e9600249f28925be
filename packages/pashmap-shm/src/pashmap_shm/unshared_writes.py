"""Spot kernels that write to arrays a forked worker cannot share with the caller.

The classic pitfall of process-based maps: the kernel writes into an ordinary numpy
array (``out = np.zeros(n)``), each forked worker writes into its own copy-on-write copy,
and the caller's array stays untouched -- silently. Before forking, the kernel's source
is read to find the variables it writes into (``out[i] = ...``, ``out[i] += ...``,
``np.copyto(out, ...)``, ``f(..., out=out)``, ``out.fill(...)``); each one that is a
global, a closure variable, an argument bound with ``functools.partial`` or an attribute
of a bound method's ``self`` (``self.out[i] = ...``), and holds a writable numpy array
outside shared memory, gets a :class:`NotSharedWarning` naming it.

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

from pashmap_shm.kernel_code import remember_last
from pashmap_shm.shared_memory import is_shared

__all__ = [
    "NotSharedWarning",
    "unshared_written_arrays",
    "warn_about_copies",
    "warn_about_unshared_writes",
]

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


def warn_about_copies() -> None:
    """Warn that a map pickled for workers holds arrays only forked workers share."""
    warnings.warn(
        "an array allocated by a fork ProcessContext (anonymous shared memory, which only "
        "forked workers inherit) reaches these workers as a copy: their writes to it are "
        "lost. Allocate it with the context that runs the map (ctx.zeros(...), or "
        "pm.Accumulator(..., context=ctx))",
        NotSharedWarning,
        stacklevel=_caller_stacklevel(),
    )


def unshared_written_arrays(kernel: Callable[..., Any]) -> list[str]:
    """The names of writable, unshared numpy arrays that ``kernel`` writes into.

    Args:
        kernel: a function, a lambda, a ``functools.partial`` or a bound method.

    Returns:
        The variables written into (globals, closure variables, arguments bound by a
        ``functools.partial``, attributes of a bound method's ``self`` such as
        ``'self.out'``) that hold such arrays, sorted; empty when nothing is wrong or the
        kernel's source is not available.
    """
    if (
        type(kernel) is types.FunctionType
        and kernel.__closure__ is None
        and not _global_names(kernel.__code__)
    ):
        return []  # refers to nothing outside itself (checked at every map: keep it cheap)
    unwrapped = _unwrap(kernel)
    if unwrapped is None:
        return []
    function, bound = unwrapped
    if not _may_refer_to_unshared(function, bound):
        return []  # nothing to look for: skip reading and parsing the source
    written = _written_paths(function.__code__)
    if not written:
        return []
    found = set()
    for name, value in _resolve(function, bound, written):
        if (
            isinstance(value, np.ndarray)
            and value.flags.writeable
            and value.size
            and not is_shared(value)
        ):
            found.add(name)
    return sorted(found)


def _unwrap(kernel: Callable[..., Any]) -> tuple[types.FunctionType, dict[str, Any]] | None:
    """The plain function under partials and bound methods, and the arguments they bind."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    candidate: Any = kernel
    for _ in range(10):
        if isinstance(candidate, functools.partial):
            positional = [*candidate.args, *positional]
            keywords = {**candidate.keywords, **keywords}
            candidate = candidate.func
        elif isinstance(candidate, types.MethodType):
            positional = [candidate.__self__, *positional]
            candidate = candidate.__func__
        elif isinstance(candidate, types.FunctionType):
            code = candidate.__code__
            parameters = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
            bound = dict(zip(parameters[: code.co_argcount], positional, strict=False))
            bound.update((k, v) for k, v in keywords.items() if k in parameters)
            return candidate, bound
        else:
            return None
    return None


# Values that cannot hold a writable array (modules are left out on purpose: writing
# into a module's array attribute from a kernel is rare, and looking would mean
# reading the source of nearly every kernel, which refers to numpy).
_NOT_CONTAINERS = (
    int,
    float,
    complex,
    str,
    bytes,
    type(None),
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    functools.partial,
    np.ufunc,
    np.generic,
    np.dtype,
)


def _may_refer_to_unshared(function: types.FunctionType, bound: dict[str, Any]) -> bool:
    """Whether any outside value the kernel can name might hold an unshared, writable array.

    Cheap (no source is read): the kernel's bound arguments, closure variables and the
    globals its code names. Reading and parsing the source costs more than a small map
    itself, too much to spend on every kernel that writes into shared arrays only.
    """
    values: list[Any] = list(bound.values())
    for cell in function.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    module_globals = function.__globals__
    for name in _global_names(function.__code__):
        if name in module_globals:
            values.append(module_globals[name])
    for value in values:
        if isinstance(value, np.ndarray):
            if value.flags.writeable and value.size and not is_shared(value):
                return True
        elif not isinstance(value, _NOT_CONTAINERS):
            return True  # e.g. a bound method's self: its attributes may be arrays
    return False


@functools.lru_cache(maxsize=256)
def _global_names_of(code: types.CodeType) -> frozenset[str]:
    """The names the code (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names_of(constant)
    return frozenset(names)


# The kernel of the previous map is the usual case: answered by identity. (Nested code
# is looked up in the cache above, so it never takes the place of the kernel's own.)
_global_names = remember_last(_global_names_of)


def _resolve(
    function: types.FunctionType, bound: dict[str, Any], paths: frozenset[tuple[str, ...]]
) -> Iterator[tuple[str, Any]]:
    """Yield ``(name, value)`` for each written path that starts outside the kernel.

    A path starts at a bound argument, a closure variable or a global; attributes are
    followed (without running properties) until the first numpy array.
    """
    code = function.__code__
    local = set(code.co_varnames)
    cells = dict(zip(code.co_freevars, function.__closure__ or (), strict=False))
    for root, *attributes in paths:
        if root in bound:
            value = bound[root]
        elif root in cells:
            try:
                value = cells[root].cell_contents
            except ValueError:  # an empty cell
                continue
        elif root not in local and root in function.__globals__:
            value = function.__globals__[root]
        else:
            continue
        name = root
        for attribute in attributes:
            if isinstance(value, np.ndarray):
                break
            try:
                value = inspect.getattr_static(value, attribute)
            except AttributeError:
                value = None
                break
            name = f"{name}.{attribute}"
        yield name, value


@functools.lru_cache(maxsize=256)
def _written_paths(code: types.CodeType) -> frozenset[tuple[str, ...]]:
    """What the code's source writes into, as ``(name, attribute, ...)`` (cached per code)."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        return frozenset()
    tree = _parse(source)
    if tree is None:
        return frozenset()
    paths: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                paths.update(_stored_paths(target))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            if isinstance(node.target, ast.Name) and isinstance(node, ast.AugAssign):
                paths.add((node.target.id,))  # arr += 1 on a global/nonlocal array
            else:
                paths.update(_stored_paths(node.target))
        elif isinstance(node, ast.Call):
            paths.update(_call_paths(node))
    return frozenset(paths)


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


def _path(node: ast.expr) -> tuple[str, ...] | None:
    """``self.out[i]`` -> ``('self', 'out')``: the variable and attributes indexed into.

    Attributes after a subscript belong to an element (``a[i].real``: ``('a',)``).
    """
    attributes: list[str] = []
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
        if isinstance(node, ast.Attribute):
            attributes.append(node.attr)
        elif isinstance(node, ast.Subscript):
            attributes.clear()
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(attributes))


def _stored_paths(target: ast.expr) -> Iterator[tuple[str, ...]]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _stored_paths(element)
    elif isinstance(target, ast.Subscript) or (
        isinstance(target, ast.Attribute) and isinstance(target.value, ast.Subscript)
    ):
        path = _path(target)
        if path is not None:
            yield path


def _call_paths(call: ast.Call) -> Iterator[tuple[str, ...]]:
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
        path = _path(candidate)
        if path is not None:
            yield path


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
