"""A one-entry cache by identity, in front of a function of one argument.

Maps ask questions about their kernel's code object at every call (does it return only
``None``? which globals does it name?). The usual case is the same kernel as last time,
and answering that by identity avoids hashing the code object (which reads all of it;
under a process context, every object touched between forks costs a page copy).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["remember_last"]

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
