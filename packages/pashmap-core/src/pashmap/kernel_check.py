"""Check, before a map runs, that the kernel can take the arguments its target gives.

The commonest first mistake is a ``Pool.map``-style kernel, ``def double(x)``, where
pashmap calls ``kernel(worker_id, index, value)``; it would fail at the first element,
in a worker, with a bare ``TypeError`` about positional arguments. A target that names
its kernel's arguments (``kernel_arguments``, e.g. ``("index", "value")``) lets ``map``
say so in the caller instead, naming the form to write. Only plain Python functions
(and partials and bound methods of them) are checked, from their code object alone;
the answer for the last kernel and arity is remembered, so a map of the same kernel
pays one identity comparison.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

__all__ = ["check_kernel_arguments"]

_VARARGS = inspect.CO_VARARGS
_ASYNC = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_NOT_PLAIN = inspect.CO_GENERATOR | _ASYNC
_last: tuple[Any, int, bool] = (None, -1, True)


def check_kernel_arguments(kernel: Callable[..., Any], target: object) -> None:
    """Raise ``TypeError`` if ``kernel`` cannot be called with the target's arguments.

    Args:
        kernel: the kernel about to be mapped.
        target: the resolved MapTarget; checked only when it has ``kernel_arguments``,
            the names of the arguments it passes after ``worker_id``.

    Raises:
        TypeError: the kernel takes too few or too many positional arguments (the
            message shows the call pashmap makes and how to write the kernel), or it is
            a generator or ``async`` function, whose calls return an unrun generator or
            coroutine instead of doing the work.
    """
    global _last
    function, bound, keywords = _unwrap(kernel)
    if function is None:
        return
    code = function.__code__
    if code.co_flags & _NOT_PLAIN:
        kind = "an async function" if code.co_flags & _ASYNC else "a generator function"
        raise TypeError(
            f"the kernel {function.__qualname__} is {kind}: each call would only make a "
            f"{'coroutine' if code.co_flags & _ASYNC else 'generator'} and run none of its "
            "body. Make it a plain function that writes its result into a pm.array (or "
            "returns it), e.g. out[index] = list(gen(...)) or asyncio.run(coro(...))"
        )
    names: tuple[str, ...] | None = getattr(target, "kernel_arguments", None)
    if names is None:
        return
    passed = 1 + len(names)
    last = _last
    if last[0] is code and last[1] == passed + bound and not keywords:
        if last[2]:
            return
    else:
        fits = _accepts(function, passed + bound, keywords)
        if not keywords:
            _last = (code, passed + bound, fits)
        if fits:
            return
    form = ", ".join(("worker_id", *names))
    label = getattr(function, "__qualname__", "the kernel")
    try:
        plain = inspect.signature(kernel)
        parameters = [p.replace(annotation=p.empty) for p in plain.parameters.values()]
        signature = f"{label}{plain.replace(parameters=parameters, return_annotation=plain.empty)}"
    except (TypeError, ValueError):
        signature = label
    description = getattr(type(target), "description", type(target).__name__)
    name = function.__name__ if function.__name__.isidentifier() else "kernel"
    raise TypeError(
        f"the kernel {signature} cannot be called as kernel({form}), which is how "
        f"pashmap calls it for {description}. Write it as "
        f"def {name}({form}): ... "
        "(worker_id says which worker runs the call, index where the result goes)"
    )


def _unwrap(
    kernel: Callable[..., Any],
) -> tuple[types.FunctionType | None, int, frozenset[str]]:
    """The plain function under partials and bound methods, how many positional
    arguments those bind already, and the names they bind by keyword."""
    bound = 0
    keywords: set[str] = set()
    candidate: Any = kernel
    for _ in range(10):
        if type(candidate) is types.FunctionType:
            return candidate, bound, frozenset(keywords)
        if isinstance(candidate, functools.partial):
            bound += len(candidate.args)
            keywords.update(candidate.keywords)
            candidate = candidate.func
        elif isinstance(candidate, types.MethodType):
            bound += 1
            candidate = candidate.__func__
        else:
            return None, 0, frozenset()
    return None, 0, frozenset()


def _accepts(function: types.FunctionType, count: int, keywords: frozenset[str]) -> bool:
    """Whether ``function`` can take ``count`` positional arguments, with the parameters
    named in ``keywords`` given by keyword."""
    code = function.__code__
    parameters = code.co_varnames[: code.co_argcount]
    first_default = code.co_argcount - len(function.__defaults__ or ())
    # Positional arguments fill the parameters before the first one bound by keyword.
    usable = next((i for i, name in enumerate(parameters) if name in keywords), len(parameters))
    required = min(usable, first_default)
    if code.co_flags & _VARARGS and usable == len(parameters):
        return count >= required
    return required <= count <= usable
