"""pm.array and the numpy-style helpers, on every installed context."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import pashmap as pm


@pytest.fixture
def context(context_name: str) -> Iterator[pm.Context]:
    """Each installed context, made the default for the test."""
    with pm.use_context(
        context_name, **({} if context_name == "local" else {"num_workers": 3})
    ) as ctx:
        yield ctx


def test_array_of_a_length_is_float64(context: pm.Context) -> None:
    out = pm.array(100)
    assert out.shape == (100,)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert out.flags.writeable


def test_shapes_and_dtypes(context: pm.Context) -> None:
    assert pm.array((3, 4)).shape == (3, 4)
    assert pm.array([2, 5]).shape == (2, 5)
    assert pm.array(np.int64(4)).shape == (4,)
    assert pm.array((0,)).shape == (0,)
    assert pm.array(()).shape == ()
    assert pm.array(3, np.int16).dtype == np.int16
    assert pm.array(3, dtype="complex64").dtype == np.complex64
    assert pm.array(3, dtype=[("x", "f4"), ("y", "i2")]).dtype.names == ("x", "y")


def test_fortran_order(context: pm.Context) -> None:
    out = pm.array((3, 4), order="F")
    assert out.flags.f_contiguous
    assert not out.flags.c_contiguous


def test_fill(context: pm.Context) -> None:
    assert (pm.array(5, fill=2.5) == 2.5).all()
    np.testing.assert_array_equal(pm.array((2, 3), fill=[1, 2, 3]), [[1, 2, 3], [1, 2, 3]])
    with pytest.raises(ValueError, match="fill must be a scalar or an array that broadcasts"):
        pm.array((2, 3), fill=[1, 2])


def test_fill_with_an_array_copies_it(context: pm.Context) -> None:
    existing = np.arange(12, dtype=np.int32).reshape(3, 4)
    copy = pm.array(fill=existing)
    np.testing.assert_array_equal(copy, existing)
    assert copy.dtype == np.int32
    assert not np.shares_memory(copy, existing)


def test_like_takes_shape_dtype_and_order(context: pm.Context) -> None:
    template = np.zeros((4, 5), dtype=np.uint8, order="F")
    out = pm.array(like=template)
    assert (out.shape, out.dtype, out.flags.f_contiguous) == ((4, 5), np.uint8, True)
    # explicit arguments win
    out = pm.array((2, 2), np.float32, like=template, order="C")
    assert (out.shape, out.dtype, out.flags.c_contiguous) == ((2, 2), np.float32, True)
    assert pm.array(like=[[1, 2]]).shape == (1, 2)


def test_per_worker_adds_the_worker_axis(context: pm.Context) -> None:
    n = context.num_workers
    assert pm.array(10, per_worker=True).shape == (n, 10)
    assert pm.array((10, 3), per_worker=True, order="F").shape == (10, 3, n)
    assert pm.zeros(4, per_worker=True).shape == (n, 4)
    acc = pm.array((2, 3), per_worker=True, order="F", fill=np.arange(3))
    for w in range(n):
        np.testing.assert_array_equal(acc[..., w], [[0, 1, 2], [0, 1, 2]])


def test_helpers(context: pm.Context) -> None:
    assert pm.empty((2, 3)).shape == (2, 3)
    assert (pm.zeros(4) == 0).all()
    assert (pm.ones((2, 2), dtype=np.int8) == 1).all()
    assert pm.ones(2, np.int8).dtype == np.int8
    full = pm.full(3, 7)
    assert full.dtype == np.array(7).dtype
    assert full.tolist() == [7, 7, 7]
    assert pm.full(2, 1.5, dtype=np.float32).dtype == np.float32
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert (pm.empty_like(a).shape, pm.empty_like(a).dtype) == ((2, 3), np.int16)
    assert pm.zeros_like(a).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert pm.ones_like(a, dtype=np.float64).dtype == np.float64
    assert pm.full_like(a, 9).tolist() == [[9, 9, 9], [9, 9, 9]]
    assert pm.full_like(a, 9).dtype == np.int16
    assert pm.zeros_like(a, shape=(5,)).shape == (5,)
    assert pm.zeros(3, order="F", per_worker=True).shape == (3, context.num_workers)


def test_helpers_are_methods_of_the_context_too(context: pm.Context) -> None:
    assert isinstance(context, pm.BaseContext)
    assert context.zeros(3).tolist() == [0, 0, 0]
    assert context.array(2, fill=1).tolist() == [1, 1]
    assert context.full_like(np.zeros(2), 4).tolist() == [4, 4]


def test_bad_allocation_arguments(context: pm.Context) -> None:
    with pytest.raises(TypeError, match="needs a shape"):
        pm.array()
    with pytest.raises(TypeError, match="shape must be an int or a tuple of ints"):
        pm.array(2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="shape must be an int or a tuple of ints"):
        pm.array(("a", 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative dimensions"):
        pm.array((3, -1))
    with pytest.raises(ValueError, match="order must be 'C'"):
        pm.array(3, order="K")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pm.array(3, dtype="not a dtype")


def test_local_allocation_is_a_plain_array() -> None:
    out = pm.LocalContext().array(3)
    assert type(out) is np.ndarray


def test_oversized_allocation_says_how_much() -> None:
    with pytest.raises(MemoryError, match=r"cannot allocate 128\.00 TiB"):
        pm.LocalContext().array((2**20, 2**20, 16))
    with pytest.raises(MemoryError, match="cannot allocate"):
        pm.LocalContext().array((2**40, 2**40))


@pytest.mark.parametrize("order", ["A", "K"])
def test_like_helpers_take_numpys_prototype_orders(order: str) -> None:
    column_major = np.asfortranarray(np.ones((3, 4)))
    row_major = np.ones((3, 4))
    for helper in (pm.empty_like, pm.zeros_like, pm.ones_like):
        assert helper(column_major, order=order).flags.f_contiguous  # type: ignore[arg-type]
        assert helper(row_major, order=order).flags.c_contiguous  # type: ignore[arg-type]
    full = pm.full_like(column_major, 7, order=order)  # type: ignore[arg-type]
    assert full.flags.f_contiguous
    assert (full == 7).all()
    with pytest.raises(ValueError, match="'A'/'K'"):
        pm.zeros_like(row_major, order="X")  # type: ignore[arg-type]
