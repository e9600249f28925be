"""Mapping, in a worker, the rows of shared output memory it is about to write.

A worker forked for a map shares the caller's memory but not its page table, and a warm
worker maps the blocks of each map anew: the first write to each 4 KiB page of an output
costs the worker a page fault, also when the page already holds data (an output written
by an earlier map, or a block the allocation cache handed out again). Write faults on
shared memory are taken one page at a time, whereas a read fault also maps the pages
around it that are in memory already (the kernel's "fault-around", 16 pages by default).
So before each share a worker asks for the share's rows to be mapped
(``madvise(MADV_POPULATE_READ)``) in every shared array the kernel refers to (by a
closure variable, a global, a default value, an argument bound with
``functools.partial`` or an attribute of a bound method's object) whose first axis is as
long as the map's target: the usual ``out[index] = ...`` then writes without faults.
Arrays the kernel reaches otherwise (through a function it calls, say) are left to the
kernel's own faults, as before.

Only rows whose pages are all in memory already are mapped (checked with ``mincore``):
fresh output is left to the kernel's own faults, so nothing is allocated that the kernel
would not have written itself. Where the kernel lacks ``MADV_POPULATE_READ`` (Linux
before 5.14) the first refusal turns this off and the worker writes as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
from collections.abc import Callable
from typing import Any

import numpy as np

from pashmap_shm.blocks import row_layouts

__all__ = ["row_mapper"]

# From <linux/mman.h>: Python's mmap module names it only from 3.13 on.
MADV_POPULATE_READ = 22

_PAGE = mmap.PAGESIZE
# Rows spanning fewer bytes are left to the kernel's faults: a few faults cost less
# than asking (mincore and madvise calls), which small maps would pay at every share.
_MIN_BYTES = 16 * _PAGE

_advice = MADV_POPULATE_READ
_enabled = True

try:
    _libc: Any = ctypes.CDLL(None, use_errno=True)
    _mincore: Any = _libc.mincore
    _mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    _madvise: Any = _libc.madvise
    _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
except (OSError, AttributeError):  # not Linux
    _enabled = False


def row_mapper(
    kernel: Callable[..., Any], target: object, *, forked: bool
) -> Callable[[Any], None] | None:
    """What a worker calls before each share of a map of ``kernel`` over ``target``.

    Args:
        kernel: the map's kernel; the arrays it refers to are the candidate outputs.
        target: the map's target; only its length is used.
        forked: the worker was forked for this map, and shares the caller's arrays as
            they are; else it is a warm worker, whose arrays were rebuilt over the
            blocks it received (memory mapped again at each map).

    Returns:
        A function of a share (a ``range`` of indices: other shares are left alone) that
        maps the share's rows of every array the kernel refers to with as many rows as
        ``target`` has elements, or ``None`` when there is none (or ``target`` has no
        length).
    """
    if not _enabled or (forked and not row_layouts) or not hasattr(target, "__len__"):
        return None
    length = len(target)
    candidates = {
        address: row_bytes
        for address, (owner, rows, row_bytes) in list(row_layouts.items())
        if forked and rows == length and owner() is not None
    }
    outputs: dict[int, int] = {}  # address -> bytes per row
    for value in _referred_by(kernel):
        if not isinstance(value, np.ndarray):
            continue
        address = int(value.__array_interface__["data"][0])
        base: object = value.base  # (a warm worker's array: the block's mapping)
        if address in candidates:
            outputs[address] = candidates[address]
        elif (
            not forked
            and isinstance(base, mmap.mmap)
            and value.ndim
            and len(value) == length
            and value.flags.c_contiguous
        ):
            outputs[address] = value.strides[0]
    if not outputs:
        return None
    rows = list(outputs.items())

    def map_rows(share: Any) -> None:
        if type(share) is not range or share.step != 1 or not _enabled:
            return
        for address, row_bytes in rows:
            if (share.stop - share.start) * row_bytes >= _MIN_BYTES:
                _map_resident(address + share.start * row_bytes, address + share.stop * row_bytes)

    return map_rows


def _referred_by(kernel: Any) -> list[Any]:
    """The objects ``kernel`` refers to directly (one level, no containers followed)."""
    found: list[Any] = []
    while isinstance(kernel, functools.partial):
        found += kernel.args
        found += kernel.keywords.values()
        kernel = kernel.func
    owner = getattr(kernel, "__self__", None)
    if owner is not None:
        found += getattr(owner, "__dict__", {}).values()
        kernel = getattr(kernel, "__func__", kernel)
    code = getattr(kernel, "__code__", None)
    if code is None:
        return found
    for cell in getattr(kernel, "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            found.append(cell.cell_contents)
    found += getattr(kernel, "__defaults__", None) or ()
    names = getattr(kernel, "__globals__", {})
    found += [names[name] for name in code.co_names if name in names]
    return found


def _map_resident(start: int, stop: int) -> None:
    """Map the pages of ``[start, stop)`` if every one of them is in memory already."""
    global _enabled
    start -= start % _PAGE
    stop += -stop % _PAGE
    if stop <= start:
        return
    resident = np.empty((stop - start) // _PAGE, dtype=np.uint8)
    if _mincore(start, stop - start, resident.ctypes.data) != 0:
        return
    if not (resident & 1).all():
        return  # fresh memory (a page not yet written): its faults allocate it
    if _madvise(start, stop - start, _advice) != 0:
        _enabled = False  # an older kernel: stop asking
