"""BLAS/OpenMP thread limits in the workers (threadpoolctl), and the blas_threads argument."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from pashmap.contexts import available_cpus
from pashmap_shm import ProcessContext, ThreadContext


def blas_threads_in_kernel(worker_id: int, index: int, value: int) -> int:
    """The most threads any BLAS/OpenMP library may use, as seen inside the kernel."""
    np.dot(np.ones((4, 4)), np.ones((4, 4)))
    return max(pool["num_threads"] for pool in threadpool_info())


@pytest.fixture
def caller_threads() -> int:
    """Give the caller's BLAS 2 threads, so that a limit of 1 is visible."""
    if not threadpool_info():
        pytest.skip("numpy uses no BLAS library that threadpoolctl knows")
    with threadpool_limits(2):
        yield 2  # type: ignore[misc]


def test_workers_get_their_share_of_the_cpus_by_default(caller_threads: int) -> None:
    ctx = ProcessContext(2)
    assert ctx.blas_threads == max(1, available_cpus() // 2)
    expected = min(caller_threads, ctx.blas_threads)
    assert ctx.map(blas_threads_in_kernel, range(4), shares=4) == [expected] * 4
    # Each worker process sets the limit in itself: the caller is not touched.
    limits = ProcessContext(2, blas_threads=1).map(blas_threads_in_kernel, range(4), shares=4)
    assert limits == [1] * 4
    assert max(pool["num_threads"] for pool in threadpool_info()) == caller_threads


def test_an_explicit_limit_and_no_limit(caller_threads: int) -> None:
    assert ProcessContext(2, blas_threads=None).map(blas_threads_in_kernel, range(2)) == [2, 2]
    assert ProcessContext(1, blas_threads=1).map(blas_threads_in_kernel, range(2)) == [1, 1]


def test_threads_limit_only_during_the_map(caller_threads: int) -> None:
    assert ThreadContext(2).blas_threads is None
    assert ThreadContext(2).map(blas_threads_in_kernel, range(2)) == [2, 2]
    assert ThreadContext(2, blas_threads=1).map(blas_threads_in_kernel, range(2)) == [1, 1]
    assert max(pool["num_threads"] for pool in threadpool_info()) == caller_threads


@pytest.mark.parametrize("klass", [ThreadContext, ProcessContext])
def test_bad_blas_threads(klass: type[ProcessContext]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        klass(2, blas_threads=0)
    with pytest.raises(TypeError, match="'auto', None or a positive integer"):
        klass(2, blas_threads="many")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'auto', None or a positive integer"):
        klass(2, blas_threads=1.5)  # type: ignore[arg-type]
    assert klass(2, blas_threads="auto").blas_threads == max(1, available_cpus() // 2)
