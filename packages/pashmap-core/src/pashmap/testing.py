"""The conformance suite: what every context promises, as pytest tests it can run on itself.

A context passes when ``pm.map`` and the allocation helpers behave under it as they do
under :class:`~pashmap.LocalContext`, the reference. To run the suite on your context,
subclass :class:`ContextConformance` in a test module and give it a ``make_context``
fixture returning a factory, called as ``make_context(num_workers)``:

```python
import pytest
from pashmap.testing import ContextConformance

from mypackage import MyContext


class TestMyContext(ContextConformance):
    @pytest.fixture
    def make_context(self):
        return lambda num_workers: MyContext(num_workers)
```

pytest then runs every check of the class on a fresh context (two workers unless the
class sets ``num_workers``), closed after each test; ``use_with_block = True`` runs each
test inside ``with context:`` instead. Parametrise the fixture
(``@pytest.fixture(params=...)``) to run the suite over several configurations. Outside
pytest's collection, :func:`check_context` runs every check in turn.

The checks use the context only through the :class:`~pashmap.Context` protocol
(``num_workers``, ``array``, ``map``, ``close``; ``pm.zeros`` and the other helpers
under ``pm.use_context``). They write results only into arrays the context allocates,
or return them, and their kernels pickle with cloudpickle (closures over those arrays),
so a context whose workers live in other processes or on other machines can pass. They
assert nothing about time beyond "did not hang". This module imports pytest;
``import pashmap`` never imports it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast, overload

import numpy as np
import pytest
from numpy.typing import NDArray

import pashmap as pm
from pashmap.contexts import Context
from pashmap.targets import contiguous_ranges

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["ContextConformance", "ContextFactory", "check_context"]

ContextFactory = Callable[[int], Context]
"""Makes the context under test: ``make_context(num_workers) -> Context``."""


class ConformanceError(Exception):
    """The exception the suite's kernels raise on purpose (a user-defined type)."""


# ----------------------------------------------------------------- targets to map over
# Module-level classes, so that workers that receive them pickled import them by name.


class _Squares(Sequence[int]):
    """A user-defined ``collections.abc.Sequence``: element ``i`` is ``i * i``."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.length))]
        if not -self.length <= index < self.length:
            raise IndexError(index)
        index %= self.length
        return index * index


class _Pairs:
    """A user-written MapTarget (split and iterate only, so not cut guided).

    Kernels get ``(index, value, index * index)``: an entry of more than one value.
    """

    def __init__(self, values: Sequence[float]) -> None:
        self.values = list(values)

    def split(self, n: int) -> list[range]:
        return contiguous_ranges(len(self.values), n)

    def iterate(self, share: range) -> Iterator[tuple[int, float, int]]:
        for index in share:
            yield index, self.values[index], index * index


class _ColumnarPairs(_Pairs):
    """:class:`_Pairs` with the columnar fast path, ``iterate_columns``."""

    def iterate_columns(self, share: range) -> tuple[range, list[float], list[int]]:
        return share, self.values[share.start : share.stop], [i * i for i in share]


class _BrokenColumns(_Pairs):
    """A target whose ``iterate_columns`` returns what it is given instead of columns."""

    def __init__(self, values: Sequence[float], returned: Any) -> None:
        super().__init__(values)
        self.returned = returned

    def iterate_columns(self, share: range) -> Any:
        return self.returned


class _NoTuples(_Pairs):
    """A target whose ``iterate`` yields bare values instead of tuples."""

    def iterate(self, share: range) -> Iterator[Any]:
        yield from share


class _Scan:
    """A user type naming its own target with ``__pashmap_target__``."""

    def __init__(self, frames: NDArray[Any]) -> None:
        self.frames = frames

    def __pashmap_target__(self) -> pm.NdarrayTarget:
        return pm.NdarrayTarget(self.frames)


class _UnpicklableError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class _FailingPairs(_Pairs):
    """A target whose ``iterate`` raises at element 5."""

    def iterate(self, share: range) -> Iterator[tuple[int, float, int]]:
        for entry in super().iterate(share):
            if entry[0] == 5:
                raise ConformanceError("the target failed at element 5")
            yield entry


class _Writer:
    """Kernels that are a bound method and a callable object."""

    def __init__(self, out: NDArray[Any]) -> None:
        self.out = out

    def write(self, worker_id: int, index: int, value: int) -> None:
        self.out[index] = value

    def __call__(self, worker_id: int, index: int, value: int) -> int:
        self.out[index] = -value
        return -value


def _scaled(factor: int, out: NDArray[Any], worker_id: int, index: int, value: int) -> None:
    out[index] = factor * value


# ---------------------------------------------------------------------------- helpers
def _map_counting_visits(
    context: Context,
    target: object,
    length: int,
    out: NDArray[Any] | None = None,
    **options: Any,
) -> list[tuple[Any, ...]]:
    """Map a kernel returning ``(index, *values)`` over ``target`` and check that every
    index in ``range(length)`` was visited exactly once, by a worker in range, and that
    the values came back in index order. With ``out``, the kernel also writes the first
    value to ``out[index]``."""
    visits = context.array(length, np.int64, fill=0, per_worker=True)
    workers = context.array(length, np.int64, fill=-1)
    rows = visits.shape[0]

    def record(worker_id: int, index: int, *values: Any) -> tuple[Any, ...]:
        visits[worker_id % rows, index] += 1
        workers[index] = worker_id
        if out is not None:
            out[index] = values[0]
        return (index, *values)

    returned = context.map(record, target, **options)
    _assert_visited_once(visits, workers, context.num_workers)
    assert len(returned) == length, f"map returned {len(returned)} values for {length} elements"
    assert [value[0] for value in returned] == list(range(length)), "values not in index order"
    return returned


def _assert_visited_once(visits: NDArray[Any], workers: NDArray[Any], num_workers: int) -> None:
    counts = visits.sum(axis=0)
    never = np.flatnonzero(counts == 0)
    again = np.flatnonzero(counts > 1)
    assert never.size + again.size == 0, (
        f"every index must be visited exactly once: never visited {_some(never)}, "
        f"visited more than once {_some(again)}"
    )
    outside = np.flatnonzero((workers < 0) | (workers >= num_workers))
    assert outside.size == 0, (
        f"worker_id must be in range(num_workers={num_workers}); got "
        f"{sorted(set(workers[outside].tolist()))}"
    )


def _some(indices: NDArray[Any]) -> str:
    more = f"... ({indices.size} in all)" if indices.size > 10 else ""
    return f"{indices[:10].tolist()}{more}"


@contextlib.contextmanager
def _opened(make_context: ContextFactory, num_workers: int, use_with_block: bool) -> Iterator[Any]:
    context = make_context(num_workers)
    if use_with_block:
        with cast("AbstractContextManager[Any]", context):
            yield context
    else:
        try:
            yield context
        finally:
            context.close()


# ------------------------------------------------------------------------------ suite
class ContextConformance:
    """The conformance suite: subclass it and define the ``make_context`` fixture.

    Every ``test_*`` method takes the context under test (the ``context`` fixture,
    made by ``make_context(num_workers)``) and checks one promise of ``pm.map`` and the
    allocation helpers. The suite never assumes the context has the number of workers
    asked for: it reads ``context.num_workers``.

    Attributes:
        num_workers: passed to ``make_context``; 2 by default, small enough for a
            2-CPU machine, large enough for the workers to share the work.
        use_with_block: run each test inside ``with context:`` (for contexts whose
            ``with`` block changes how they run maps, e.g. warm workers) instead of
            calling ``context.close()`` after it.
    """

    num_workers: ClassVar[int] = 2
    use_with_block: ClassVar[bool] = False

    @pytest.fixture
    def make_context(self) -> ContextFactory:
        """Override: return a factory ``make_context(num_workers) -> Context``."""
        raise NotImplementedError(
            f"{type(self).__name__} must define the make_context fixture, returning "
            "a factory: lambda num_workers: MyContext(num_workers)"
        )

    @pytest.fixture
    def context(self, make_context: ContextFactory) -> Iterator[Context]:
        """A fresh context from ``make_context``, closed (or its block left) after the test."""
        with _opened(make_context, self.num_workers, self.use_with_block) as context:
            yield context

    # ------------------------------------------------------------ the contract
    def test_is_a_context(self, context: Context) -> None:
        """It satisfies the Context protocol and has at least one worker."""
        assert isinstance(context, Context), "the context lacks methods of pashmap.Context"
        assert isinstance(context.num_workers, int)
        assert context.num_workers >= 1

    def test_quick_guide_under_use_context(self, context: Context) -> None:
        """The README's quick guide, with ``pm.array`` and ``pm.map`` under ``pm.use_context``."""
        inp = np.random.default_rng(0).random(100)
        with pm.use_context(context):
            outp = pm.array(100)

            def triple_it(worker_id: int, index: int, value: float) -> None:
                outp[index] = 3 * value

            pm.map(triple_it, inp)
        np.testing.assert_allclose(outp, inp * 3)

    def test_quick_guide_with_context_methods(self, context: Context) -> None:
        """The quick guide with the context's own ``array`` and ``map``."""
        inp = np.random.default_rng(1).random(100)
        outp = context.array(100)

        def triple_it(worker_id: int, index: int, value: float) -> None:
            outp[index] = 3 * value

        assert context.map(triple_it, inp) == [None] * 100
        np.testing.assert_allclose(outp, inp * 3)

    def test_allocation_helpers_give_arrays_the_workers_write(self, context: Context) -> None:
        """``pm.zeros``, ``pm.full_like``, ... give the asked shape, dtype, order and values,
        and the workers' writes reach the caller.
        """
        prototype = np.zeros((6, 2), dtype=np.float32, order="F")
        with pm.use_context(context):
            arrays = {
                "array": pm.array((6, 2), np.int32),
                "array(fill=)": pm.array(fill=np.full((6, 2), 5.0)),
                "empty": pm.empty((6, 2), order="F"),
                "zeros": pm.zeros((6, 2)),
                "ones": pm.ones((6, 2), np.int16),
                "full": pm.full((6, 2), 7.5),
                "empty_like": pm.empty_like(prototype),
                "zeros_like": pm.zeros_like(prototype),
                "ones_like": pm.ones_like(prototype, dtype=np.float64),
                "full_like": pm.full_like(prototype, 2.0),
            }
        assert arrays["array(fill=)"].tolist() == [[5.0, 5.0]] * 6
        assert arrays["ones"].dtype == np.int16
        assert arrays["ones"].tolist() == [[1, 1]] * 6
        assert arrays["full"].tolist() == [[7.5, 7.5]] * 6
        assert arrays["zeros_like"].dtype == np.float32
        assert arrays["zeros_like"].flags.f_contiguous
        assert arrays["empty"].flags.f_contiguous
        assert arrays["full_like"].tolist() == [[2.0, 2.0]] * 6
        for name, array in arrays.items():
            assert array.shape == (6, 2), name
        outputs = list(arrays.values())

        def write(worker_id: int, index: int, value: int) -> None:
            for out in outputs:
                out[index] = (value, -value)

        context.map(write, range(10, 16))
        for name, array in arrays.items():
            assert array.tolist() == [[v, -v] for v in range(10, 16)], name

    def test_arrays_of_other_dtypes(self, context: Context) -> None:
        """Arrays of bool, small and unsigned ints, complex, datetime and string dtypes."""
        dtypes = ["?", "i1", "u8", "c8", "M8[s]", "S4", "U3"]
        arrays = [context.array(6, dtype) for dtype in dtypes]

        def write(worker_id: int, index: int, value: int) -> None:
            for out in arrays:
                out[index] = np.array(value).astype(out.dtype)

        context.map(write, range(6))
        for dtype, out in zip(dtypes, arrays, strict=True):
            assert out.dtype == np.dtype(dtype)
            assert out.tolist() == np.arange(6).astype(dtype).tolist(), dtype

    def test_array_of_a_structured_dtype(self, context: Context) -> None:
        """An array of a structured dtype keeps its fields in the workers."""
        dtype = np.dtype([("train_id", np.uint64), ("energy", np.float32), ("flag", "?")])
        out = context.array(8, dtype, fill=0)

        def write(worker_id: int, index: int, value: int) -> str:
            out[index] = (value, value / 2, value % 2 == 1)
            out["energy"][index] *= 2
            return str(out.dtype.names)

        assert context.map(write, range(100, 108)) == [str(dtype.names)] * 8
        assert out.dtype == dtype
        assert out["train_id"].tolist() == list(range(100, 108))
        assert out["energy"].tolist() == list(range(100, 108))
        assert out["flag"].tolist() == [False, True] * 4

    # --------------------------------------------------------------- targets
    def test_list(self, context: Context) -> None:
        """A list of mixed values: every index once, values in index order."""
        data = [3.5, "a", None, (1, 2), 7]
        assert _map_counting_visits(context, data, 5) == list(enumerate(data))

    def test_tuple(self, context: Context) -> None:
        """A tuple."""
        data = tuple(range(100, 150))
        assert _map_counting_visits(context, data, 50) == list(enumerate(data))

    def test_range(self, context: Context) -> None:
        """A range."""
        data = range(5, 305, 3)
        assert _map_counting_visits(context, data, 100) == list(enumerate(data))

    def test_str(self, context: Context) -> None:
        """A string, one character per element."""
        data = "pashmap maps over the characters of a string"
        assert _map_counting_visits(context, data, len(data)) == list(enumerate(data))

    def test_user_sequence(self, context: Context) -> None:
        """A user-defined ``collections.abc.Sequence``."""
        data = _Squares(60)
        assert _map_counting_visits(context, data, 60) == [(i, i * i) for i in range(60)]

    def test_ndarray_1d(self, context: Context) -> None:
        """A 1-d numpy array."""
        data = np.linspace(0.0, 1.0, 200)
        out = context.array(like=data, fill=0)
        returned = _map_counting_visits(context, data, 200, out)
        assert [value for _, value in returned] == data.tolist()
        np.testing.assert_array_equal(out, data)

    def test_ndarray_2d_rows(self, context: Context) -> None:
        """A 2-d numpy array, one row per element."""
        data = np.arange(60.0).reshape(20, 3)
        out = context.array((20, 3), fill=0)
        returned = _map_counting_visits(context, data, 20, out)
        np.testing.assert_array_equal(np.stack([row for _, row in returned]), data)
        np.testing.assert_array_equal(out, data)

    def test_ndarray_target_axis_1(self, context: Context) -> None:
        """``pm.NdarrayTarget(a, axis=1)``, one column per element."""
        data = np.arange(60.0).reshape(3, 20)
        out = context.array((20, 3), fill=0)
        returned = _map_counting_visits(context, pm.NdarrayTarget(data, axis=1), 20, out)
        np.testing.assert_array_equal(np.stack([column for _, column in returned]), data.T)
        np.testing.assert_array_equal(out, data.T)

    def test_xarray_dataarray(self, context: Context) -> None:
        """An xarray DataArray, along its first dimension (skipped without xarray)."""
        xr = pytest.importorskip("xarray")
        data = xr.DataArray(np.arange(24.0).reshape(8, 3), dims=("train", "pixel"))
        out = context.array((8, 3), fill=0)

        def copy_row(worker_id: int, index: int, row: Any) -> tuple[str, ...]:
            out[index] = row.values
            return tuple(row.dims)

        assert context.map(copy_row, data) == [("pixel",)] * 8
        np.testing.assert_array_equal(out, data.values)

    def test_user_map_target(self, context: Context) -> None:
        """A user-written MapTarget with entries of several values, with and without
        ``iterate_columns``.
        """
        values = [0.5 * i for i in range(150)]
        expected = [(i, 0.5 * i, i * i) for i in range(150)]
        assert _map_counting_visits(context, _Pairs(values), 150) == expected
        assert _map_counting_visits(context, _ColumnarPairs(values), 150) == expected

    def test_pashmap_target_method(self, context: Context) -> None:
        """An object naming its target with ``__pashmap_target__``."""
        frames = np.arange(40.0).reshape(10, 2, 2)
        totals = context.array(10, fill=0)

        def integrate(worker_id: int, index: int, frame: NDArray[Any]) -> None:
            totals[index] = frame.sum()

        context.map(integrate, _Scan(frames))
        np.testing.assert_array_equal(totals, frames.sum(axis=(1, 2)))

    def test_empty_targets(self, context: Context) -> None:
        """Empty targets of every kind: no kernel call, an empty list."""

        def never_called(worker_id: int, *entry: Any) -> None:
            raise ConformanceError(f"the kernel was called on an empty target with {entry}")

        empties: list[object] = [[], (), range(0), "", np.empty((0, 3)), _Pairs([])]
        for empty in empties:
            assert context.map(never_called, empty) == [], f"mapping over {empty!r}"

    def test_single_element(self, context: Context) -> None:
        """A target of one element (fewer elements than workers)."""
        assert _map_counting_visits(context, [41], 1) == [(0, 41)]

    def test_kernels_of_every_callable_kind(self, context: Context) -> None:
        """A ``functools.partial``, a bound method and a callable object as the kernel."""
        out = context.array(10, fill=0)
        assert context.map(functools.partial(_scaled, 3, out), range(10)) == [None] * 10
        assert out.tolist() == [3 * v for v in range(10)]
        context.map(_Writer(out).write, range(10, 20))
        assert out.tolist() == list(range(10, 20))
        assert context.map(_Writer(out), range(10)) == [-v for v in range(10)]
        assert out.tolist() == [-v for v in range(10)]

    # ------------------------------------------------- order and exactly-once
    def test_return_values_in_index_order(self, context: Context) -> None:
        """Return values come back as a list in index order."""
        assert context.map(lambda w, i, v: v * v, range(1000)) == [v * v for v in range(1000)]

    def test_return_values_none_and_mixed(self, context: Context) -> None:
        """A kernel returning only ``None``, and one returning ``None`` for some elements."""
        out = context.array(90, fill=0)

        def writes_only(worker_id: int, index: int, value: int) -> None:
            out[index] = value

        def some_none(worker_id: int, index: int, value: int) -> int | None:
            if index % 3:
                return None
            return value

        assert context.map(writes_only, range(90)) == [None] * 90
        np.testing.assert_array_equal(out, np.arange(90))
        assert context.map(some_none, range(90)) == [None if i % 3 else i for i in range(90)]

    def test_large_return_values(self, context: Context) -> None:
        """Return values of a megabyte each come back whole and in order."""
        values = context.map(lambda w, i, v: np.full(125_000, v), range(6))
        assert [(value.shape, float(value[0]), float(value[-1])) for value in values] == [
            ((125_000,), float(v), float(v)) for v in range(6)
        ]

    def test_every_index_once_with_skewed_costs(self, context: Context) -> None:
        """Elements of very different costs: every index is visited exactly once."""
        length = 120
        visits = context.array(length, np.int64, fill=0, per_worker=True)
        workers = context.array(length, np.int64, fill=-1)
        rows = visits.shape[0]

        def skewed(worker_id: int, index: int, value: int) -> int:
            if index % 40 == 0 or index >= length - 8:  # a few elements cost far more
                time.sleep(0.005)
            visits[worker_id % rows, index] += 1
            workers[index] = worker_id
            return index

        assert context.map(skewed, range(length)) == list(range(length))
        _assert_visited_once(visits, workers, context.num_workers)

    def test_every_index_once_in_many_small_shares(self, context: Context) -> None:
        """Many small shares (equal, and guided down to single elements): every index exactly
        once.
        """
        # A target that is not cut guided gets many equal shares; a long array is cut
        # guided, down to shares of single elements at its end.
        _map_counting_visits(context, _Pairs([1.0] * 700), 700)
        _map_counting_visits(context, np.zeros(3000), 3000)

    def test_every_index_once_with_the_shares_option(self, context: Context) -> None:
        """``shares=n`` for several ``n``: every index exactly once (skipped for a context
        without the option).
        """
        length = 37
        try:
            _map_counting_visits(context, range(length), length, shares=1)
        except TypeError as exc:
            if "shares" not in str(exc):
                raise
            pytest.skip(f"this context takes no shares= option ({exc})")
        _map_counting_visits(context, _Pairs([0.0] * length), length, shares=context.num_workers)
        _map_counting_visits(context, range(length), length, shares=2 * length)

    # ------------------------------------------------------------ exceptions
    def test_kernel_exception_keeps_its_type_and_message(self, context: Context) -> None:
        """A kernel's exception reaches the caller with its type and message; the context still
        works after.
        """

        def fails_at_seven(worker_id: int, index: int, value: int) -> int:
            if index == 7:
                raise ValueError(f"element {index} is bad")
            return value

        with pytest.raises(ValueError, match="element 7 is bad") as info:
            context.map(fails_at_seven, range(30))
        assert str(info.value) == "element 7 is bad"
        assert context.map(lambda w, i, v: v, range(5)) == list(range(5)), (
            "the context must keep working after a kernel raised"
        )

    def test_kernel_exception_traceback_names_the_kernel(self, context: Context) -> None:
        """The traceback (or the remote one chained to it) names the kernel and the function
        that raised.
        """

        def check_the_value(value: int) -> None:
            if value == 3:
                raise ConformanceError("raised on purpose")

        def raise_in_this_kernel(worker_id: int, index: int, value: int) -> None:
            check_the_value(value)

        with pytest.raises(ConformanceError, match="raised on purpose") as info:
            context.map(raise_in_this_kernel, range(10))
        # The traceback, or (across a process boundary) the remote one chained to it.
        report = "".join(traceback.format_exception(info.type, info.value, info.tb))
        assert "raise_in_this_kernel" in report, report
        assert "check_the_value" in report, report

    def test_kernel_exception_that_cannot_be_pickled(self, context: Context) -> None:
        """An exception that cannot be pickled still reaches the caller: as itself, or
        (across a process boundary) as ``pm.KernelError`` naming its type and message."""

        def raises_unpicklable(worker_id: int, index: int, value: int) -> None:
            if index == 2:
                raise _UnpicklableError("it holds a lock")

        with pytest.raises((_UnpicklableError, pm.KernelError)) as info:
            context.map(raises_unpicklable, range(5))
        if isinstance(info.value, pm.KernelError):
            assert "_UnpicklableError" in str(info.value), str(info.value)
            assert "it holds a lock" in str(info.value), str(info.value)
            assert info.value.type_name.endswith("_UnpicklableError")

    def test_exceptions_from_the_target_and_a_per_worker_factory(self, context: Context) -> None:
        """An exception raised by the target's ``iterate`` or by a ``PerWorker`` factory
        reaches the caller with its type, as a kernel's does."""
        with pytest.raises(ConformanceError, match="the target failed at element 5"):
            context.map(lambda w, i, v, square: None, _FailingPairs([0.0] * 20))
        resource = pm.PerWorker(lambda worker_id: 1 // (worker_id - worker_id))
        with pytest.raises(ZeroDivisionError):
            context.map(lambda w, i, v: resource.get(), range(5))

    # --------------------------------------------------- per-worker features
    def test_per_worker_arrays(self, context: Context) -> None:
        """``per_worker=True`` adds a ``num_workers`` axis (first for C, last for F order); each
        worker writes only its slice.
        """
        num_workers = context.num_workers
        length = 50
        data = np.arange(1.0, length + 1)
        rows = context.array(length, fill=0, per_worker=True)
        columns = context.array((length, 2), order="F", fill=0, per_worker=True)
        assert rows.shape == (num_workers, length)
        assert columns.shape == (length, 2, num_workers)
        workers = context.array(length, np.int64, fill=-1)

        def deposit(worker_id: int, index: int, value: np.float64) -> None:
            rows[worker_id, index] += value
            columns[index, :, worker_id] = value
            workers[index] = worker_id

        context.map(deposit, data)
        assert ((workers >= 0) & (workers < num_workers)).all()
        expected = np.zeros((num_workers, length))
        expected[workers, np.arange(length)] = data
        np.testing.assert_array_equal(rows, expected, "writes outside the worker's own slice")
        np.testing.assert_array_equal(columns, np.repeat(expected.T[:, None, :], 2, axis=1))
        np.testing.assert_array_equal(rows.sum(axis=0), data)

    def test_accumulator_sum(self, context: Context) -> None:
        """``Accumulator`` sums, created with ``context=`` and under ``pm.use_context``."""
        data = np.linspace(-5.0, 3.0, 101)
        weights = np.array([1.0, 2.0, 3.0])
        total = pm.Accumulator(3, context=context)
        with pm.use_context(context):
            counts = pm.Accumulator((), np.int64)

        def add(worker_id: int, index: int, value: np.float64) -> None:
            total.local += value * weights
            counts.local += 1

        context.map(add, data)
        np.testing.assert_allclose(total.result(), data.sum() * weights)
        assert counts.result() == 101

    def test_accumulator_max(self, context: Context) -> None:
        """``Accumulator(reduce=np.maximum)``."""
        data = np.linspace(-5.0, 3.0, 101)
        peak = pm.Accumulator((), reduce=np.maximum, context=context)
        peak_row = pm.Accumulator(2, np.int64, reduce=np.maximum, context=context)

        def keep_the_largest(worker_id: int, index: int, value: np.float64) -> None:
            peak.local = np.maximum(peak.local, value)
            peak_row.local[:] = np.maximum(peak_row.local, [index, -index])

        context.map(keep_the_largest, data)
        assert peak.result() == 3.0
        assert peak_row.result().tolist() == [100, 0]

    def test_per_worker_values(self, context: Context) -> None:
        """``PerWorker``: the factory runs once per worker and map, in that worker; the teardown
        once per value.
        """
        num_workers = context.num_workers
        length = 40
        created = context.array(num_workers, np.int64, fill=0)
        torn_down = context.array(num_workers, np.int64, fill=0)
        seen = context.array(length, np.int64, fill=-1)
        workers = context.array(length, np.int64, fill=-1)
        wrong_id = context.array(length, np.int64, fill=0)

        def make(worker_id: int) -> int:
            created[worker_id] += 1
            return 1000 + worker_id

        def tear_down(value: int) -> None:
            torn_down[value - 1000] += 1

        resource = pm.PerWorker(make, teardown=tear_down)

        def use(worker_id: int, index: int, value: int) -> None:
            seen[index] = resource.get()
            workers[index] = worker_id
            wrong_id[index] = pm.current_worker_id() != worker_id

        expected = np.zeros(num_workers, dtype=np.int64)
        for _ in range(2):  # once per worker and map
            context.map(use, range(length))
            assert ((workers >= 0) & (workers < num_workers)).all()
            expected += np.bincount(workers, minlength=num_workers) > 0
            assert created.tolist() == expected.tolist(), "the factory runs once per worker"
            assert torn_down.tolist() == expected.tolist(), "the teardown runs once per value"
            np.testing.assert_array_equal(seen, 1000 + workers)
            assert not wrong_id.any(), "current_worker_id() differs from the kernel's worker_id"

    def test_per_worker_teardown_after_a_kernel_error(self, context: Context) -> None:
        """The worker whose kernel raised still tears its ``PerWorker`` value down."""
        created = context.array(context.num_workers, np.int64, fill=0)
        torn_down = context.array(context.num_workers, np.int64, fill=0)
        failed = context.array(1, np.int64, fill=-1)

        def make(worker_id: int) -> int:
            created[worker_id] += 1
            return worker_id

        def tear_down(worker_id: int) -> None:
            torn_down[worker_id] += 1

        resource = pm.PerWorker(make, teardown=tear_down)

        def fails_at_seven(worker_id: int, index: int, value: int) -> None:
            resource.get()
            if index == 7:
                failed[0] = worker_id
                raise ConformanceError("raised on purpose")

        with pytest.raises(ConformanceError):
            context.map(fails_at_seven, range(30))
        worker = int(failed[0])
        assert 0 <= worker < context.num_workers
        assert (created[worker], torn_down[worker]) == (1, 1)

    def test_per_worker_teardown_error_reaches_the_caller(self, context: Context) -> None:
        """An exception raised by a ``PerWorker`` teardown reaches the caller."""

        def tear_down(value: int) -> None:
            raise ConformanceError("the teardown failed")

        resource = pm.PerWorker(lambda worker_id: worker_id, teardown=tear_down)
        with pytest.raises(ConformanceError, match="the teardown failed"):
            context.map(lambda w, i, v: resource.get(), range(10))

    # ---------------------------------------------------------------- options
    def test_progress_bar(self, context: Context) -> None:
        """``progress=True``, and the program-wide default, give the same results with the bar
        on (skipped without tqdm).
        """
        pytest.importorskip("tqdm")
        data = np.arange(200.0)
        out = context.array(like=data, fill=0)

        def double(worker_id: int, index: int, value: np.float64) -> None:
            out[index] = 2 * value

        assert context.map(double, data, progress=True) == [None] * 200
        np.testing.assert_array_equal(out, 2 * data)
        previous = pm.set_default_options(progress=True)
        try:
            assert context.map(lambda w, i, v: v + 1, range(50)) == list(range(1, 51))
        finally:
            pm.set_default_options(**previous)

    def test_timeout_raises_map_timeout_error(self, context: Context) -> None:
        """``timeout=`` past: ``MapTimeoutError``, a ``TimeoutError``, without hanging; the
        context works after.
        """

        def sleeps(worker_id: int, index: int, value: int) -> int:
            time.sleep(0.25)
            return value

        started = time.monotonic()
        with pytest.raises(pm.MapTimeoutError) as info:
            context.map(sleeps, range(12), timeout=0.3)
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 30, "the map went on long after its timeout"
        assert context.map(lambda w, i, v: v, range(5)) == list(range(5)), (
            "the context must keep working after a timeout"
        )

    def test_timeout_not_reached(self, context: Context) -> None:
        """A ``timeout=`` that is not reached changes nothing."""
        out = context.array(100, fill=0)

        def write(worker_id: int, index: int, value: int) -> int:
            out[index] = value
            return -value

        assert context.map(write, range(100), timeout=60) == [-v for v in range(100)]
        np.testing.assert_array_equal(out, np.arange(100))

    # ------------------------------------------------------------ nested maps
    def test_nested_map(self, context: Context) -> None:
        """A ``pm.map`` inside the kernel works and gives the right answer."""
        length = 12
        with pm.use_context(context):
            out = pm.zeros(length)

            def outer(worker_id: int, index: int, value: int) -> list[int]:
                inner = pm.map(lambda w, j, factor: factor * value, [1, 2, 3])
                out[index] = sum(inner)
                return inner

            values = pm.map(outer, range(length))
        assert values == [[v, 2 * v, 3 * v] for v in range(length)]
        np.testing.assert_array_equal(out, 6 * np.arange(length))

    # ---------------------------------------------------------- bad arguments
    def test_kernel_that_is_not_callable(self, context: Context) -> None:
        """A kernel that is not callable: ``TypeError``."""
        with pytest.raises(TypeError):
            context.map(42, [1, 2])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            context.map([1, 2], lambda w, i, v: None)  # type: ignore[arg-type]

    def test_target_that_cannot_be_mapped(self, context: Context) -> None:
        """A dict, a set, a generator, an int, an object: ``TypeError``."""

        def kernel(worker_id: int, index: int, value: Any) -> None:
            raise ConformanceError("the kernel was called on an unmappable target")

        for target in ({"a": 1}, {1, 2}, (v for v in range(3)), 42, object()):
            with pytest.raises(TypeError):
                context.map(kernel, target)

    def test_target_breaking_its_contract_is_named(self, context: Context) -> None:
        """``iterate_columns`` returning no tuple of iterables, or ``iterate`` yielding
        no tuples: a ``TypeError`` naming the target class and the method, also when the
        kernel returns only ``None`` (the fastest path of a context)."""

        def kernel(worker_id: int, index: int, value: float, square: int) -> None:
            return None

        broken: list[Any] = [_BrokenColumns(range(8), 5), _BrokenColumns(range(8), (5, 6))]
        for target in broken:
            with pytest.raises(TypeError, match=r"_BrokenColumns\.iterate_columns\(share\)"):
                context.map(kernel, target)
        with pytest.raises(TypeError, match=r"_NoTuples\.iterate\(share\)"):
            context.map(kernel, _NoTuples(range(8)))

    def test_unknown_option(self, context: Context) -> None:
        """An option no context knows: ``TypeError``."""
        with pytest.raises(TypeError):
            context.map(lambda w, i, v: v, [1, 2], no_such_option=True)

    def test_bad_timeout(self, context: Context) -> None:
        """A negative timeout: ``ValueError``; one that is not a number: ``TypeError``."""
        with pytest.raises(ValueError, match="timeout"):
            context.map(lambda w, i, v: v, [1, 2], timeout=-1)
        with pytest.raises(TypeError):
            context.map(lambda w, i, v: v, [1, 2], timeout="soon")

    def test_bad_array_arguments(self, context: Context) -> None:
        """``array`` without a shape or with a bad shape, order or fill: ``TypeError`` or
        ``ValueError``.
        """
        with pytest.raises(TypeError):
            context.array()
        with pytest.raises(TypeError):
            context.array("ten")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            context.array(2.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            context.array((-1, 3))
        with pytest.raises(ValueError, match="order"):
            context.array(3, order="K")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="broadcast"):
            context.array(3, fill=np.ones(4))

    # --------------------------------------------------------------- lifetime
    def test_close_twice(self, context: Context) -> None:
        """``close()`` may be called twice."""
        assert context.map(lambda w, i, v: v, range(3)) == [0, 1, 2]
        context.close()  # and once more after the test


def check_context(
    make_context: ContextFactory, *, num_workers: int = 2, use_with_block: bool = False
) -> dict[str, str]:
    """Run every check of :class:`ContextConformance` on contexts from ``make_context``.

    For a test of your own, or outside pytest's collection: each check gets a fresh
    context, ``make_context(num_workers)``, closed after it (or used as ``with context:``
    when ``use_with_block``). Checks whose optional dependency (xarray, tqdm) is missing
    are skipped.

    Args:
        make_context: the factory, called as ``make_context(num_workers)``.
        num_workers: the number of workers to ask for.
        use_with_block: run each check inside ``with context:``.

    Returns:
        Each check's name, in order, and ``'passed'`` or ``'skipped: <reason>'``.

    Raises:
        AssertionError: a check failed (and whatever a failing check raised).
    """
    suite = ContextConformance()
    outcomes: dict[str, str] = {}
    for name in [name for name in vars(ContextConformance) if name.startswith("test_")]:
        with _opened(make_context, num_workers, use_with_block) as context:
            try:
                getattr(suite, name)(context)
            except pytest.skip.Exception as skipped:
                outcomes[name] = f"skipped: {skipped.msg}"
                continue
        outcomes[name] = "passed"
    return outcomes
