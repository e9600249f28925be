"""Find the arrays a kernel writes into whose writes would never reach the caller.

The classic pitfall of maps run outside the caller's memory: the kernel writes into an
ordinary numpy array (``out = np.zeros(n)``), each worker writes into its own copy (a
forked process's copy-on-write page, a Dask worker's unpickled copy), and the caller's
array stays untouched -- silently. A context calls :func:`warn_about_lost_writes` before
it runs a map, with its own test of which arrays reach the caller (shared memory for
``'processes'``, the arrays it allocated for ``'dask'``).

The kernel's source is read to find what it writes into (``out[i] = ...``, ``out[i] +=
...``, ``out += ...``, ``np.copyto(out, ...)``, ``f(..., out=out)``, ``out.fill(...)``),
reached from a global, a closure variable, an argument bound with ``functools.partial``
or a bound method's ``self``, through attributes (``self.out``) and entries of dicts,
lists and tuples (``arrays['out']``, ``outs[0]``; every entry when the key is not a
constant), also through a local alias (``o = out``, ``o = arrays['out']``, ``a, b =
outs``, ``for o in outs``, ``for k, o in arrays.items()``). Each writable, non-empty
numpy array found there that does not reach the caller gets a :class:`NotSharedWarning`
naming it.

The check looks at the kernel's own code only (not at functions it calls) and needs its
source; without source it stays silent rather than guess. Aliases are followed without
regard to order: a local name assigned from an array anywhere in the kernel counts.
Reading the source is skipped when nothing the kernel names could hold such an array,
so kernels that write only into the context's arrays pay next to nothing.
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

from pashmap.errors import NotSharedWarning

__all__ = [
    "NotSharedWarning",
    "lost_writes",
    "outside_values",
    "user_stacklevel",
    "warn_about_lost_writes",
]

# Methods and functions that write into the array they are given (first argument).
_WRITING_METHODS = frozenset(
    {"fill", "sort", "put", "itemset", "partition", "resize", "setfield", "__setitem__"}
)
_WRITING_FUNCTIONS = frozenset({"copyto", "put", "place", "putmask", "fill_diagonal", "at"})


def warn_about_lost_writes(
    kernel: Callable[..., Any],
    reaches_caller: Callable[[Any], bool],
    *,
    where: str,
    advice: str,
) -> None:
    """Warn with :class:`NotSharedWarning` for each array the kernel would write in vain.

    Call it in the caller before a map starts (the warning points at the user's
    ``map`` call).

    Args:
        kernel: the kernel about to run.
        reaches_caller: tells whether a writable numpy array's writes reach the caller
            (e.g. ``pashmap_shm.is_shared``).
        where: completes "every ... writes into its own copy", e.g. ``'worker
            process'``.
        advice: what to do instead, e.g. "Allocate it with pm.array() ...". The
            placeholder ``{name}`` is replaced by the array's name.
    """
    names = lost_writes(kernel, reaches_caller)
    if not names:
        return
    label = getattr(kernel, "__qualname__", None) or type(kernel).__name__
    for name in names:
        warnings.warn(
            f"the kernel {label} writes to {name!r}, a numpy array whose writes cannot "
            f"reach the caller: every {where} writes into its own copy and the caller "
            f"never sees the writes. " + advice.replace("{name}", name),
            NotSharedWarning,
            stacklevel=user_stacklevel(),
        )


def lost_writes(kernel: Callable[..., Any], reaches_caller: Callable[[Any], bool]) -> list[str]:
    """The names of the writable numpy arrays ``kernel`` writes into in vain.

    Args:
        kernel: a function, a lambda, a ``functools.partial`` or a bound method.
        reaches_caller: tells whether a writable numpy array's writes reach the caller.

    Returns:
        The variables written into (globals, closure variables, arguments bound by a
        ``functools.partial``, attributes of a bound method's ``self`` such as
        ``'self.out'``, entries such as ``"arrays['out']"``) that hold non-empty,
        writable arrays for which ``reaches_caller`` is false, sorted; empty when
        nothing is wrong or the kernel's source is not available.
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
    if not _may_name_lost_array(function, bound, reaches_caller):
        return []  # nothing to look for: skip reading and parsing the source
    written = _written_paths(function.__code__)
    if not written:
        return []
    found = set()
    for name, value in _resolve(function, bound, written):
        if isinstance(value, np.ndarray) and _is_lost(value, reaches_caller):
            found.add(name)
    return sorted(found)


def _is_lost(array: np.ndarray[Any, Any], reaches_caller: Callable[[Any], bool]) -> bool:
    return bool(array.flags.writeable and array.size and not reaches_caller(array))


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


def outside_values(kernel: Callable[..., Any]) -> dict[str, Any]:
    """The values a kernel can name from outside itself, by the name it uses.

    Args:
        kernel: a function, a lambda, a ``functools.partial`` or a bound method.

    Returns:
        The arguments bound by ``functools.partial`` and a bound method's ``self``, the
        closure variables and the globals its code names (empty for other callables).
        A context can use it to name the arrays a kernel refers to in its messages.
    """
    unwrapped = _unwrap(kernel)
    if unwrapped is None:
        return {}
    function, bound = unwrapped
    return _outside(function, bound)


def _outside(function: types.FunctionType, bound: dict[str, Any]) -> dict[str, Any]:
    code = function.__code__
    values: dict[str, Any] = {}
    module_globals = function.__globals__
    for name in _global_names(code):
        if name in module_globals:
            values[name] = module_globals[name]
    for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    values.update(bound)
    return values


def _may_name_lost_array(
    function: types.FunctionType, bound: dict[str, Any], reaches_caller: Callable[[Any], bool]
) -> bool:
    """Whether any outside value the kernel can name might hold a writable array whose
    writes would not reach the caller.

    Cheap (no source is read): the kernel's bound arguments, closure variables and the
    globals its code names. Reading and parsing the source costs more than a small map
    itself, too much to spend on every kernel that writes into shared arrays only.
    """
    for value in _outside(function, bound).values():
        if isinstance(value, np.ndarray):
            if _is_lost(value, reaches_caller):
                return True
        elif not isinstance(value, _NOT_CONTAINERS):
            return True  # e.g. a bound method's self: its attributes may be arrays
    return False


@functools.lru_cache(maxsize=256)
def _global_names(code: types.CodeType) -> frozenset[str]:
    """The names the code (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return frozenset(names)


# A written path: the variable it starts at, then the steps from it to the object
# written into: ("attr", name) for ``.name``, ("item", key) for ``[key]`` with a constant
# key, ("item", _ANY) for any other key (every entry of the container is a candidate).
_Step = tuple[str, Any]
_Path = tuple[str, tuple[_Step, ...]]
_ANY = object()
# Containers whose entries are followed (their indexing runs no user code).
_CONTAINERS = (dict, list, tuple)
# How many local aliases deep a path is followed (``p = o; o = out``).
_ALIAS_DEPTH = 8


def _resolve(
    function: types.FunctionType, bound: dict[str, Any], paths: frozenset[_Path]
) -> Iterator[tuple[str, Any]]:
    """Yield ``(name, value)`` for each written path that starts outside the kernel.

    A path starts at a bound argument, a closure variable or a global; attributes
    (without running properties) and entries of dicts, lists and tuples are followed
    until the first numpy array. A step with no constant key follows every entry.
    """
    code = function.__code__
    local = set(code.co_varnames)
    cells = dict(zip(code.co_freevars, function.__closure__ or (), strict=False))
    for root, steps in paths:
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
        yield from _follow(root, value, steps)


def _follow(name: str, value: Any, steps: tuple[_Step, ...]) -> Iterator[tuple[str, Any]]:
    for position, (kind, key) in enumerate(steps):
        if isinstance(value, np.ndarray):
            break  # the rest indexes into the array
        if kind == "attr":
            try:
                value = inspect.getattr_static(value, key)
            except AttributeError:
                return
            name = f"{name}.{key}"
        elif type(value) in _CONTAINERS:
            if key is _ANY:
                entries = value.items() if type(value) is dict else enumerate(value)
                for entry_key, entry in list(entries):
                    yield from _follow(f"{name}[{entry_key!r}]", entry, steps[position + 1 :])
                return
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                return
            name = f"{name}[{key!r}]"
        else:
            return
    yield name, value


@functools.lru_cache(maxsize=256)
def _written_paths(code: types.CodeType) -> frozenset[_Path]:
    """What the code's source writes into, as ``(variable, steps)`` (cached per code).

    Local names assigned from a path (``o = out``, ``o = arrays['out']``, ``a, b =
    outs``, ``for o in outs``) are replaced by what they were assigned from.
    """
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        return frozenset()
    tree = _parse(source)
    if tree is None:
        return frozenset()
    written: list[ast.expr] = []
    aliases: dict[str, set[_Path]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                written.extend(_stored(target))
                _bind(aliases, target, node.value)
        elif isinstance(node, ast.AugAssign):
            written.append(node.target)  # in place: out += 1, arrays['out'] += 1
            written.extend(_stored(node.target))
        elif isinstance(node, ast.AnnAssign):
            written.extend(_stored(node.target))
            if node.value is not None:
                _bind(aliases, node.target, node.value)
        elif isinstance(node, ast.NamedExpr):
            _bind(aliases, node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            _bind_loop(aliases, node.target, node.iter)
        elif isinstance(node, ast.Call):
            written.extend(_call_targets(node))
    paths: set[_Path] = set()
    for expression in written:
        path = _path(expression)
        if path is not None:
            paths.update(_expand(path, aliases, _ALIAS_DEPTH))
    return frozenset(paths)


def _expand(path: _Path, aliases: dict[str, set[_Path]], depth: int) -> Iterator[_Path]:
    """``path``, with a local alias at its start replaced by what it was assigned from."""
    root, steps = path
    sources = aliases.get(root)
    if not sources or depth == 0:
        yield path
        return
    for source_root, source_steps in sources:
        yield from _expand((source_root, source_steps + steps), aliases, depth - 1)


def _bind(aliases: dict[str, set[_Path]], target: ast.expr, value: ast.expr) -> None:
    """Record ``target = value`` when it makes a local name an alias of a path."""
    if isinstance(value, ast.IfExp):
        _bind(aliases, target, value.body)
        _bind(aliases, target, value.orelse)
        return
    if isinstance(target, ast.Name):
        path = _path(value)
        if path is not None and path[0] != target.id:
            aliases.setdefault(target.id, set()).add(path)
        return
    if not isinstance(target, (ast.Tuple, ast.List)):
        return
    elements = target.elts
    starred_anywhere = any(
        isinstance(e, ast.Starred) for e in (*elements, *getattr(value, "elts", ()))
    )
    if (
        isinstance(value, (ast.Tuple, ast.List))
        and len(value.elts) == len(elements)
        and not starred_anywhere
    ):
        for element, element_value in zip(elements, value.elts, strict=True):
            _bind(aliases, element, element_value)
        return
    source = _path(value)
    if source is None:
        return
    root, steps = source
    starred = False
    for position, element in enumerate(elements):
        if isinstance(element, ast.Starred):
            starred = True
            # The starred name is a list of entries: indexing it gives any of them.
            _bind_path(aliases, element.value, (root, (*steps, ("item", _ANY), ("item", _ANY))))
            continue
        # Past a starred element the position from the start is not known.
        key = _ANY if starred else position
        _bind_path(aliases, element, (root, (*steps, ("item", key))))


def _bind_path(aliases: dict[str, set[_Path]], target: ast.expr, path: _Path) -> None:
    if isinstance(target, ast.Name):
        aliases.setdefault(target.id, set()).add(path)
    elif isinstance(target, (ast.Tuple, ast.List)):
        root, steps = path
        for position, element in enumerate(target.elts):
            if isinstance(element, ast.Starred):
                element = element.value
            _bind_path(aliases, element, (root, (*steps, ("item", position))))


def _bind_loop(aliases: dict[str, set[_Path]], target: ast.expr, iterated: ast.expr) -> None:
    """Record ``for target in iterated`` when it walks the entries of a path."""
    if isinstance(iterated, (ast.Tuple, ast.List)):  # for o in (out, other)
        for element in iterated.elts:
            _bind(aliases, target, element)
        return
    entry_of: ast.expr | None = None
    if isinstance(iterated, ast.Call):
        function = iterated.func
        pair = isinstance(target, ast.Tuple) and len(target.elts) == 2
        if isinstance(function, ast.Attribute) and not iterated.args:
            if function.attr == "values":  # for o in arrays.values()
                entry_of = function.value
            elif function.attr == "items" and pair:  # for key, o in arrays.items()
                entry_of, target = function.value, target.elts[1]  # type: ignore[attr-defined]
        elif (
            isinstance(function, ast.Name) and function.id == "enumerate" and pair and iterated.args
        ):
            entry_of, target = iterated.args[0], target.elts[1]  # type: ignore[attr-defined]  # k, o
    else:
        entry_of = iterated
    if entry_of is None:
        return
    source = _path(entry_of)
    if source is not None:
        root, steps = source
        _bind_path(aliases, target, (root, (*steps, ("item", _ANY))))


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


def _path(node: ast.expr) -> _Path | None:
    """``self.out['a'][i]`` -> ``('self', (('attr', 'out'), ('item', 'a'), ('item', _ANY)))``."""
    steps: list[_Step] = []
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
        if isinstance(node, ast.Attribute):
            steps.append(("attr", node.attr))
        elif isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, (str, int)):
                steps.append(("item", key.value))
            else:
                steps.append(("item", _ANY))
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return node.id, tuple(reversed(steps))


def _stored(target: ast.expr) -> Iterator[ast.expr]:
    """The objects an assignment to ``target`` writes into: ``out`` for ``out[i] = v``."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _stored(element)
    elif isinstance(target, ast.Starred):
        yield from _stored(target.value)
    elif isinstance(target, ast.Subscript):
        yield target.value
    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Subscript):
        yield target.value  # a[i].real = v writes into a


def _call_targets(call: ast.Call) -> Iterator[ast.expr]:
    """The arguments a call writes into: ``out=``, ``out.fill()``, ``np.copyto(out, ...)``."""
    for keyword in call.keywords:
        if keyword.arg == "out":
            value = keyword.value
            yield from value.elts if isinstance(value, ast.Tuple) else [value]
    function = call.func
    if isinstance(function, ast.Attribute):
        if function.attr in _WRITING_METHODS:
            yield function.value
        if function.attr in _WRITING_FUNCTIONS and call.args:
            yield call.args[0]


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the user's code calling pashmap.

    For :func:`warnings.warn` called from a context or a kit function: frames of
    ``pashmap`` and of its plugins (modules named ``pashmap_*``) are skipped.
    """
    frame: types.FrameType | None = sys._getframe(2)  # 1 is the warn() caller
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not _is_own(module):
            return level
        frame = frame.f_back
        level += 1
    return level


def _is_own(module: str) -> bool:
    return module in ("pashmap", "contextlib") or module.startswith(("pashmap.", "pashmap_"))
