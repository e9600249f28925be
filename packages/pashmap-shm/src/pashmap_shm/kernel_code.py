"""What pashmap-shm learns from a kernel's code object, cheaply enough to ask at every map.

Process workers need not collect (or check) the values of a kernel whose bytecode
returns only ``None`` (:func:`returns_only_none`), the usual kernel, which writes into
shared arrays. Maps ask such questions about their kernel at every call, and the usual
case is the same kernel as last time: :func:`remember_last` answers that by identity,
without hashing the code object (which reads all of it; every object touched between
forks costs a page copy).
"""

from __future__ import annotations

import dis
import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["remember_last", "returns_only_none"]

K = TypeVar("K")
V = TypeVar("V")


def remember_last(function: Callable[[K], V], /) -> Callable[[K], V]:
    """Wrap ``function`` so that a call with the same object as the last call (``is``)
    returns the last answer without calling it.

    The entry is one tuple, replaced whole, so threads asking about different objects
    cannot mix up answers. It holds a reference to the last argument.
    """
    last: tuple[Any, Any] = (_NOTHING, None)

    @functools.wraps(function)
    def remembered(key: K, /) -> V:
        nonlocal last
        entry = last
        if entry[0] is key:
            return entry[1]  # type: ignore[no-any-return]
        answer = function(key)
        last = (key, answer)
        return answer

    return remembered


_NOTHING = object()


def returns_only_none(kernel: Callable[..., Any]) -> bool:
    """Whether every call of ``kernel`` that returns gives ``None``, as its bytecode proves.

    True for a plain function (or a ``functools.partial`` or bound method of one) whose
    every ``return`` returns the constant ``None`` -- the usual kernel, which writes its
    results into arrays. Workers then need not collect and check the values. False when
    it cannot tell (a lambda, ``return value``, a generator, a callable object).
    """
    function: Any = kernel
    if type(function) is not types.FunctionType:
        for _ in range(10):
            if isinstance(function, functools.partial):
                function = function.func
            elif isinstance(function, types.MethodType):
                function = function.__func__
            else:
                break
        if not isinstance(function, types.FunctionType):
            return False
    return _code_returns_only_none(function.__code__)


_NOT_PLAIN = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@remember_last  # (the same kernel as last time: the usual case, answered by identity)
@functools.lru_cache(maxsize=512)
def _code_returns_only_none(code: types.CodeType) -> bool:
    if code.co_flags & _NOT_PLAIN:
        return False
    previous: dis.Instruction | None = None
    for instruction in dis.get_instructions(code):
        name = instruction.opname
        if name == "RETURN_CONST":  # Python 3.12+
            if instruction.argval is not None:
                return False
        elif name == "RETURN_VALUE" and (
            # Only "LOAD_CONST None; RETURN_VALUE", and not reached by a jump (which
            # would bring another value).
            instruction.is_jump_target
            or previous is None
            or previous.opname != "LOAD_CONST"
            or previous.argval is not None
        ):
            return False
        previous = instruction
    return True
