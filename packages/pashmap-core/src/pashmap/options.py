"""The options every context understands: ``progress`` and ``timeout``.

``BaseContext.map`` takes them out of the keyword options, fills in the program-wide
defaults (:func:`set_default_options`), checks them, and passes them on to the context's
``run`` only when they ask for something, so a context pays nothing for them otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["COMMON_OPTIONS", "get_default_options", "resolve_options", "set_default_options"]

COMMON_OPTIONS = ("progress", "timeout")

_defaults: dict[str, Any] = {"progress": False, "timeout": None}
_NUMPY_BOOLS = frozenset({"bool", "bool_"})  # numpy.bool_ (numpy 2: numpy.bool)


class _Unset:
    def __repr__(self) -> str:
        return "<unchanged>"


_UNSET: Any = _Unset()


def set_default_options(
    *, progress: bool = _UNSET, timeout: float | None = _UNSET
) -> dict[str, Any]:
    """Set program-wide defaults for the options of every ``map`` call.

    Examples:
        ```python
        pm.set_default_options(progress=True)   # a progress bar on every map
        ```

    Args:
        progress: ``True`` to show a progress bar (tqdm) in the caller, ``False`` for
            none (initially); numpy booleans are accepted too. Left unchanged when not
            given.
        timeout: seconds after which a map is cancelled with ``TimeoutError``; ``None``
            for no limit, which is the initial value. Left unchanged when not given.

    Returns:
        The previous defaults, to restore them with ``set_default_options(**previous)``.

    Raises:
        TypeError: a progress that is not ``True`` or ``False``, or a timeout that is
            not a number.
        ValueError: a timeout that is not a positive number.
    """
    options = {
        name: value
        for name, value in (("progress", progress), ("timeout", timeout))
        if value is not _UNSET
    }
    checked = _check(options)
    previous = dict(_defaults)
    _defaults.update(checked)
    return previous


def get_default_options() -> dict[str, Any]:
    """The current program-wide defaults of the common options."""
    return dict(_defaults)


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in defaults and check the common options; leave the others as they are.

    Returns:
        The options to pass to ``run``: the context's own options unchanged, plus
        ``progress=True`` and ``timeout=<seconds>`` only when they are in effect.
    """
    if not options and not _defaults["progress"] and _defaults["timeout"] is None:
        return {}  # the usual case, at every map
    resolved = dict(options)
    for name in COMMON_OPTIONS:
        resolved.setdefault(name, _defaults[name])
    resolved.update(_check({name: resolved[name] for name in COMMON_OPTIONS}))
    if not resolved["progress"]:
        del resolved["progress"]
    if resolved["timeout"] is None:
        del resolved["timeout"]
    return resolved


def _check(options: Mapping[str, Any]) -> dict[str, Any]:
    checked = {}
    if "progress" in options:
        progress = options["progress"]
        # Only booleans: bool("no") is True, and a string or a number here is a mistake.
        # (numpy booleans are named by type, so importing this module needs no numpy.)
        kind = type(progress)
        if kind is not bool and not (kind.__module__ == "numpy" and kind.__name__ in _NUMPY_BOOLS):
            raise TypeError(f"progress must be True or False, got {progress!r} ({kind.__name__})")
        checked["progress"] = bool(progress)
    if "timeout" in options:
        timeout = options["timeout"]
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
            if not timeout > 0 or math.isnan(timeout):
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            timeout = float(timeout)
        checked["timeout"] = timeout
    return checked
