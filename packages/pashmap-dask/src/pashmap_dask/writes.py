"""The output transport: what a share wrote into the context's arrays, and only that.

The arrays a :class:`~pashmap_dask.DaskContext` allocates are ordinary numpy arrays in
the caller. A kernel sent to a Dask worker does not get them: it gets, for each, a
:class:`TrackedArray` of the same shape and dtype, made for its share, that records
which elements the kernel writes (``out[index] = ...``, ``out[index, :, 3] = ...``,
``acc.local += ...``, ufuncs with ``out=``, ``np.copyto``, ``.fill()``...) in a mask of
one byte per element. An array that the caller left as allocated (every element equal)
is made afresh on the worker, so it never travels; one the caller filled travels once
per worker with the map's inputs, and the tracked array is a view of that copy.

When the share ends, :func:`written_runs` cuts what it wrote into runs of contiguous
memory: a run the share wrote whole travels back as its bytes, any other as a packed
mask and the values it selects. In the caller, :class:`WriteBack` copies each run into
the caller's array, and keeps a mask of the elements already written during the map, so
that two shares writing the same element raise :class:`ConflictingWritesError` (naming
the array) rather than leaving whichever came last. ``per_worker`` arrays (and so
:class:`~pashmap.Accumulator` partials) are exempt: a share is one worker id, so it
sends back its own slice only, whole, when it wrote to it.

::

    caller                                    Dask worker (one task = one share)
    ------                                    ----------------------------------
    out = ctx.zeros((n, 512))   --- spec -->  TrackedArray(zeros, mask) per share
    data (filled by caller)     --- once -->  TrackedArray(view of the copy, mask)
                                              kernel writes out[index] = ...
    WriteBack.apply(runs)   <-- written runs  written_runs(): bytes of whole runs,
      conflict check, copy                    mask + values of partial ones
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from pashmap import PashmapError

__all__ = [
    "ArraySpec",
    "ConflictingWritesError",
    "Run",
    "TrackedArray",
    "WriteBack",
    "Writes",
    "uniform_value",
    "written_runs",
]

_INTEGERS = (int, np.integer)

# Writes are looked up in chunks of this many elements of the mask: a share's runs are
# found by scanning only the chunks it touched, not the whole mask.
_CHUNK = 1 << 16


class ConflictingWritesError(PashmapError, ValueError):
    """Two shares of a map wrote the same element of an array that is not ``per_worker``.

    Under shared memory this would be a race; on a cluster each share writes into its
    own copy, so one of the two values would be lost. Give each share its own elements
    (``out[index] = ...``), or accumulate with ``pm.Accumulator`` or a ``per_worker``
    array.

    Attributes:
        name: the name of the array as the kernel refers to it (or a description).
        element: the multi-index of the first element found written twice.
    """

    def __init__(self, message: str, *, name: str, element: tuple[int, ...]) -> None:
        super().__init__(message)
        self.name = name
        self.element = element


@dataclass(frozen=True)
class ArraySpec:
    """What a worker needs to make its share's copy of one context array.

    Attributes:
        key: the array's number within the map.
        shape, dtype, order: those of the caller's array.
        fill: the bytes of one element when every element of the caller's array is the
            same (the array is made afresh on the worker), else ``None`` (the contents
            travel once per worker with the map).
        per_worker: the array has a worker axis (first for C order, last for F order).
    """

    key: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    order: str
    fill: bytes | None
    per_worker: bool

    def blank(self) -> NDArray[Any]:
        """A new array of this spec holding the fill value everywhere."""
        if self.fill is None or not any(self.fill):
            return np.zeros(self.shape, self.dtype, order=self.order)  # type: ignore[call-overload,no-any-return]
        value = np.frombuffer(self.fill, dtype=self.dtype)[0]
        return np.full(self.shape, value, self.dtype, order=self.order)  # type: ignore[call-overload,no-any-return]


def uniform_value(array: NDArray[Any]) -> bytes | None:
    """The bytes of the element every element of ``array`` equals, else ``None``.

    Compares bytes (so ``-0.0`` differs from ``0.0`` and a NaN equals itself), a chunk at
    a time, stopping at the first difference: an array the caller filled with data is
    told apart after a few bytes.
    """
    if array.size == 0:
        return bytes(array.dtype.itemsize)
    memory = array.ravel(order="K").view(np.uint8)
    itemsize = array.dtype.itemsize
    first = bytes(memory[:itemsize])
    if itemsize == 0:
        return first
    if not any(first):
        step = 1 << 22
        words = _words(memory)
        for start in range(0, len(words), step):
            if words[start : start + step].any():
                return None
        return first
    rows = memory.reshape(-1, itemsize)
    pattern = np.frombuffer(first, np.uint8)
    step = max(1, (1 << 22) // itemsize)
    for start in range(0, len(rows), step):
        if not (rows[start : start + step] == pattern).all():
            return None
    return first


def _words(memory: NDArray[np.uint8]) -> NDArray[Any]:
    """The bytes as 8-byte words where they divide evenly (faster to test for zero)."""
    if len(memory) % 8 == 0 and memory.ctypes.data % 8 == 0:
        return memory.view(np.uint64)
    return memory


# ------------------------------------------------------------------------- worker side
class Writes:
    """What one share wrote into one context array: a mask and the chunks it touched.

    Args:
        root: the share's copy of the array (C or F contiguous).
        per_worker: the array is ``per_worker``: only whether it was written is kept.
    """

    def __init__(self, root: NDArray[Any], *, per_worker: bool) -> None:
        self.root = root
        self.per_worker = per_worker
        self.written = False
        self.address = root.ctypes.data
        self.itemsize = root.dtype.itemsize
        self.nbytes = root.nbytes
        self.c_order = root.flags.c_contiguous
        self.row = root[0].size if root.ndim and self.c_order and len(root) else 1
        # Rows written whole by ``root[i] = ...`` (C order): one byte each, set without a
        # call into numpy, turned into mask and chunks when the share ends.
        self.rows: bytearray | None = None
        if per_worker:
            return
        self.mask = np.zeros(root.size, np.bool_)  # calloc: pages appear as they are written
        self.mask_shaped = self.mask.reshape(root.shape, order="C" if self.c_order else "F")
        self.chunks = np.zeros(root.size // _CHUNK + 1, np.bool_)
        if self.c_order and root.ndim and root.size:
            self.rows = bytearray(len(root))

    def fold_rows(self) -> None:
        """Turn the rows written whole into mask and chunks."""
        if self.rows is None or not any(self.rows):
            return
        self.written = True
        rows = np.frombuffer(self.rows, np.bool_)
        self.mask_shaped[rows] = True
        row = self.row
        for first, last in _spans(np.flatnonzero(rows)):
            self.chunks[first * row // _CHUNK : ((last + 1) * row - 1) // _CHUNK + 1] = True
        self.rows = bytearray(len(self.rows))

    def mark_key(self, key: Any) -> None:
        """Record a write of ``root[key]`` (the root itself was indexed)."""
        self.written = True
        if self.per_worker:
            return
        self.mask_shaped[key] = True
        first = key[0] if type(key) is tuple and key else key
        if self.c_order and isinstance(first, _INTEGERS) and self.root.ndim:
            row = int(first)
            row = row if row >= 0 else row + len(self.root)
            lo = row * self.row
            self.chunks[lo // _CHUNK : (lo + self.row - 1) // _CHUNK + 1] = True
        elif self.c_order and type(first) is slice and first.step in (None, 1):
            start, stop, _ = first.indices(len(self.root))
            if stop > start:
                self.chunks[start * self.row // _CHUNK : (stop * self.row - 1) // _CHUNK + 1] = True
        else:
            self.chunks[:] = True

    def mark_view(self, view: NDArray[Any], key: Any = Ellipsis) -> None:
        """Record a write of ``view[key]``, ``view`` being any view of the root."""
        self.written = True
        if self.per_worker:
            return
        mask = self._mask_of(view)
        if mask is None:
            self.chunks[:] = True
            self.mask[:] = True  # not a view of the root's elements: assume all written
            return
        mask[key] = True
        lo, hi = _element_bounds(view, self.address, self.itemsize)
        lo, hi = max(lo, 0), min(hi, len(self.mask))
        if hi > lo:
            self.chunks[lo // _CHUNK : (hi - 1) // _CHUNK + 1] = True

    def _mask_of(self, view: NDArray[Any]) -> NDArray[np.bool_] | None:
        """The mask elements of ``view``'s elements, laid out as ``view`` is.

        ``view`` may have another dtype that lies within one element of the root (a
        field of a structured array, ``out["energy"]``): its elements then stand for
        the root's elements they lie in.
        """
        offset = view.__array_interface__["data"][0] - self.address
        itemsize = self.itemsize
        within = offset % itemsize if itemsize else 0
        if (
            not itemsize
            or within + view.dtype.itemsize > itemsize
            or not 0 <= offset < max(self.nbytes, 1)
            or any(stride % itemsize for stride in view.strides)
        ):
            return None
        return np.lib.stride_tricks.as_strided(
            self.mask[offset // itemsize :],
            shape=view.shape,
            strides=tuple(stride // itemsize for stride in view.strides),
        )


def _element_bounds(view: NDArray[Any], address: int, itemsize: int) -> tuple[int, int]:
    """The first and one-past-last element of the root that ``view`` spans."""
    start = view.__array_interface__["data"][0]
    lo = hi = start
    for extent, stride in zip(view.shape, view.strides, strict=True):
        if extent == 0:
            return 0, 0
        if stride > 0:
            hi += (extent - 1) * stride
        else:
            lo += (extent - 1) * stride
    return (lo - address) // itemsize, (hi - address) // itemsize + 1


class TrackedArray(np.ndarray[Any, Any]):
    """A share's copy of a context array, or a view of it, recording what is written.

    Reads behave as for any ndarray; results of arithmetic are plain ndarrays. Writes
    through ``[...] =``, in-place operators, ufuncs with ``out=``, ``np.copyto`` and
    friends, and the writing methods (``fill``, ``sort``, ``put``, ...) are recorded.
    """

    _writes: Writes | None

    def __array_finalize__(self, obj: object) -> None:
        self._writes = getattr(obj, "_writes", None)

    def __setitem__(self, key: Any, value: Any) -> None:
        np.ndarray.__setitem__(self, key, value)
        writes = self._writes
        if writes is not None:
            if writes.root is self:
                rows = writes.rows
                if rows is not None and type(key) is int:
                    rows[key] = 1  # out[index] = ...: the usual write, kept cheap
                else:
                    writes.mark_key(key)
            else:
                writes.mark_view(self, key)

    def _mark(self) -> None:
        writes = self._writes
        if writes is not None:
            writes.mark_view(self)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain = tuple(_plain(x) for x in inputs)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_plain(x) for x in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if method == "at" and isinstance(inputs[0], TrackedArray):
            inputs[0]._mark()
        if out is None:
            return result
        for array in out:
            if isinstance(array, TrackedArray):
                array._mark()
        return out[0] if len(out) == 1 else out

    def __array_function__(
        self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any
    ) -> Any:
        result = super().__array_function__(func, types, args, kwargs)
        if func in _WRITING_FUNCTIONS and args and isinstance(args[0], TrackedArray):
            args[0]._mark()
        return result

    def fill(self, value: Any) -> None:
        np.ndarray.fill(self, value)
        self._mark()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        np.ndarray.sort(self, *args, **kwargs)
        self._mark()

    def partition(self, *args: Any, **kwargs: Any) -> None:
        np.ndarray.partition(self, *args, **kwargs)
        self._mark()

    def put(self, *args: Any, **kwargs: Any) -> None:
        np.ndarray.put(self, *args, **kwargs)
        self._mark()

    def __reduce__(self) -> Any:  # a copy leaving the share is a plain array
        return np.ndarray.__reduce__(np.asarray(self))


_WRITING_FUNCTIONS = frozenset(
    {np.copyto, np.place, np.putmask, np.put, np.fill_diagonal, np.put_along_axis}
)


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, TrackedArray) else x


def track(root: NDArray[Any], *, per_worker: bool) -> tuple[TrackedArray, Writes]:
    """Wrap a share's copy of a context array; return the tracked array and its record."""
    tracked = root.view(TrackedArray)
    writes = Writes(tracked, per_worker=per_worker)
    tracked._writes = writes
    return tracked, writes


@dataclass(frozen=True)
class Run:
    """A run of contiguous memory (in elements) a share wrote into one array.

    Attributes:
        start: the first element, counted in memory order.
        values: the elements written: all of the run when ``mask`` is None, else those
            the mask selects.
        mask: ``np.packbits`` of the elements written in the run, or None for all.
        length: the run's length in elements.
    """

    start: int
    length: int
    values: NDArray[Any]
    mask: NDArray[np.uint8] | None


def written_runs(writes: Writes, worker_id: int) -> list[Run]:
    """Cut what a share wrote into runs of contiguous memory, with their values.

    For a ``per_worker`` array: the slice of ``worker_id``, whole, when it was written.
    Values are views of the share's copy where they can be (whole runs): the result is
    pickled straight from them.
    """
    root = writes.root.view(np.ndarray)
    flat = root.ravel(order="K")
    rows = writes.rows
    if rows is not None and not writes.written and any(rows):
        # Only out[index] = ... writes: the runs are runs of whole rows, no mask needed.
        row = writes.row
        return [
            Run(first * row, (last + 1 - first) * row, flat[first * row : (last + 1) * row], None)
            for first, last in _spans(np.flatnonzero(np.frombuffer(rows, np.bool_)))
        ]
    writes.fold_rows()
    if not writes.written:
        return []
    if writes.per_worker:
        # The worker axis is the slowest in memory (first in C order, last in F order):
        # a worker's slice is one contiguous run.
        workers = root.shape[0] if writes.c_order else root.shape[-1]
        length = root.size // workers if workers else 0
        start = worker_id * length
        return [Run(start, length, flat[start : start + length], None)]
    runs = []
    for lo, hi in _touched_ranges(writes.chunks, len(flat)):
        for start, stop in _true_runs(writes.mask, lo, hi):
            mask = writes.mask[start:stop]
            if mask.all():
                runs.append(Run(start, stop - start, flat[start:stop], None))
            else:
                runs.append(Run(start, stop - start, flat[start:stop][mask], np.packbits(mask)))
    return runs


def _spans(positions: NDArray[np.intp]) -> Iterator[tuple[int, int]]:
    """First and last of each run of consecutive numbers in sorted ``positions``."""
    if not len(positions):
        return
    breaks = np.flatnonzero(np.diff(positions) != 1)
    firsts = np.concatenate(([positions[0]], positions[breaks + 1]))
    lasts = np.concatenate((positions[breaks], [positions[-1]]))
    yield from zip(firsts.tolist(), lasts.tolist(), strict=True)


def _touched_ranges(chunks: NDArray[np.bool_], size: int) -> Iterator[tuple[int, int]]:
    """Element ranges of consecutive touched chunks."""
    for first, last in _spans(np.flatnonzero(chunks)):
        yield first * _CHUNK, min((last + 1) * _CHUNK, size)


def _true_runs(mask: NDArray[np.bool_], lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """Runs holding every written element of ``mask[lo:hi]``: from the first written
    element to the last, split where long stretches were not written."""
    part = mask[lo:hi]
    written = np.flatnonzero(part)
    if not len(written):
        return
    # Gaps of more than a chunk split runs; smaller gaps ride along in the mask.
    gaps = np.flatnonzero(np.diff(written) > _CHUNK)
    firsts = np.concatenate(([written[0]], written[gaps + 1]))
    lasts = np.concatenate((written[gaps], [written[-1]]))
    for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
        yield lo + first, lo + last + 1


# ------------------------------------------------------------------------- caller side
class WriteBack:
    """Copies the runs shares send back into the caller's array, catching conflicts.

    What the map has written so far is kept as sorted, disjoint intervals for runs
    written whole (the usual ``out[index] = ...``: no memory per element), and as a mask
    of one byte per element, made on first need, for the elements of partial runs.

    Args:
        array: the caller's array (the context allocated it: C or F contiguous).
        name: how to name the array in a :class:`ConflictingWritesError`.
        per_worker: the array is ``per_worker`` (no conflict checks).
    """

    def __init__(self, array: NDArray[Any], name: str, *, per_worker: bool) -> None:
        self.array = array
        self.name = name
        self.per_worker = per_worker
        self.flat = array.ravel(order="K")  # a view: the context allocates contiguous arrays
        self.starts: list[int] = []
        self.stops: list[int] = []
        self.claimed: NDArray[np.bool_] | None = None

    def apply(self, runs: list[Run]) -> None:
        """Copy one share's runs in.

        Raises:
            ConflictingWritesError: an element was already written by another share.
        """
        for run in runs:
            stop = run.start + run.length
            target = self.flat[run.start : stop]
            if run.mask is None:
                self._claim(run.start, stop, None)
                target[...] = run.values
            else:
                mask = np.unpackbits(run.mask, count=run.length).view(np.bool_)
                self._claim(run.start, stop, mask)
                target[mask] = run.values

    def _claim(self, start: int, stop: int, mask: NDArray[np.bool_] | None) -> None:
        if self.per_worker:
            return
        # Whole runs met so far that overlap [start, stop)?
        first = bisect.bisect_right(self.stops, start)
        for k in range(first, len(self.starts)):
            lo, hi = self.starts[k], self.stops[k]
            if lo >= stop:
                break
            lo, hi = max(lo, start), min(hi, stop)
            if mask is None or mask[lo - start : hi - start].any():
                offset = 0 if mask is None else int(np.argmax(mask[lo - start : hi - start]))
                self._conflict(lo + offset)
        if self.claimed is not None:
            claimed = self.claimed[start:stop]
            clash = claimed if mask is None else claimed & mask
            if clash.any():
                self._conflict(start + int(np.argmax(clash)))
        if mask is None:
            k = bisect.bisect_left(self.starts, start)
            self.starts.insert(k, start)
            self.stops.insert(k, stop)
        else:
            if self.claimed is None:
                self.claimed = np.zeros(self.flat.size, np.bool_)
            self.claimed[start:stop] |= mask

    def _conflict(self, position: int) -> None:
        order: Literal["C", "F"] = "C" if self.array.flags.c_contiguous else "F"
        element = tuple(int(i) for i in np.unravel_index(position, self.array.shape, order=order))
        raise ConflictingWritesError(
            f"two shares of the map wrote element {element} of {self.name}: on a Dask "
            "cluster each share writes into its own copy, so one value would be lost. "
            "Let each element be written by one index only (out[index] = ...), or "
            "accumulate with pm.Accumulator or a per_worker=True array",
            name=self.name,
            element=element,
        )
