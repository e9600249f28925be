"""pm.map: every element exactly once, return values in index order, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pashmap as pm


def test_every_element_exactly_once_in_index_order(context_name: str) -> None:
    n = 1000
    with pm.use_context(context_name) as context:
        visits = pm.zeros(n, dtype=np.int64)
        workers = pm.full(n, -1, dtype=np.int64)

        def kernel(worker_id: int, index: int, value: int) -> int:
            visits[index] += 1
            workers[index] = worker_id
            return value * value

        result = pm.map(kernel, range(n))
        assert result == [i * i for i in range(n)]
        assert (visits == 1).all()
        assert set(np.unique(workers)) <= set(range(context.num_workers))


def test_return_values_are_a_list_of_none_without_return() -> None:
    assert pm.map(lambda w, i, v: None, [1, 2, 3]) == [None, None, None]


def test_worker_id_is_zero_locally() -> None:
    assert pm.map(lambda w, i, v: w, "abc") == [0, 0, 0]


def test_kernel_exceptions_propagate_with_their_type() -> None:
    class BoomError(Exception):
        pass

    seen: list[int] = []

    def kernel(worker_id: int, index: int, value: int) -> None:
        seen.append(index)
        if index == 3:
            raise BoomError("at 3")

    with pytest.raises(BoomError, match="at 3"):
        pm.map(kernel, range(10))
    assert seen == [0, 1, 2, 3]  # the map stops at the first error


def test_kernel_must_be_callable() -> None:
    with pytest.raises(TypeError, match="kernel must be callable"):
        pm.map([1, 2], [1, 2])  # type: ignore[call-overload]


def test_unknown_options_are_an_error() -> None:
    with pytest.raises(TypeError, match=r"unexpected option.*: chunksize"):
        pm.map(lambda w, i, v: v, [1], chunksize=4)


def test_map_on_a_context_object_directly() -> None:
    context = pm.LocalContext()
    assert context.map(lambda w, i, v: v * 2, (1, 2)) == [2, 4]


def test_a_bare_context_protocol_implementation_works_as_default() -> None:
    class Minimal:
        """A Context without BaseContext: only the protocol's members."""

        closed = False

        num_workers = 1

        def allocate(self, shape: tuple[int, ...], dtype: Any, order: str) -> Any:
            return np.full(shape, 7, dtype=dtype, order=order)  # type: ignore[call-overload]

        def array(self, *args: Any, **kwargs: Any) -> Any:
            return pm.LocalContext.array(self, *args, **kwargs)  # type: ignore[arg-type]

        def map(self, kernel: Any, target: object, /, **options: Any) -> list[Any]:
            return [kernel(0, i, v) for i, v in enumerate(target)]  # type: ignore[call-overload]

        def run(self, kernel: Any, target: Any, /, **options: Any) -> list[Any]:
            return [
                kernel(0, *entry) for share in target.split(1) for entry in target.iterate(share)
            ]

        def close(self) -> None:
            self.closed = True

    minimal = Minimal()
    assert isinstance(minimal, pm.Context)
    pm.set_default_context(minimal)  # type: ignore[arg-type]
    assert pm.map(lambda w, i, v: v + 1, [1, 2]) == [2, 3]
    assert pm.zeros(3).tolist() == [0, 0, 0]
    assert pm.empty(2).tolist() == [7, 7]
    with pm.use_context(minimal) as used:  # a context object given is not closed by the block
        assert used is minimal
    assert not minimal.closed
    with pm.use_context(type(minimal)) as made:  # one made here is closed, protocol only
        assert made.map(lambda w, i, v: v, [5]) == [5]
    assert made.closed  # type: ignore[attr-defined]
