"""Exceptions raised by kernels reach the caller with their type and traceback."""

from __future__ import annotations

import os
import threading
import time
import traceback

import numpy as np
import pytest

from pashmap.contexts import BaseContext
from pashmap_shm import KernelError, ProcessContext, RemoteTraceback, ThreadContext

from .conftest import wait_until


class CustomError(Exception):
    pass


class NeedsKeywordError(Exception):
    """Pickles, but cannot be unpickled: __init__ requires a keyword argument."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


class HoldsALambdaError(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lambda")
        self.callback = lambda: None


def fail_at_7(worker_id: int, index: int, value: int) -> None:
    if index == 7:
        raise CustomError(f"bad element {index}")


def test_kernel_exception_keeps_its_type(context: BaseContext) -> None:
    with pytest.raises(CustomError, match="bad element 7"):
        context.map(fail_at_7, range(20))


def test_worker_traceback_is_chained() -> None:
    with ProcessContext(2) as ctx, pytest.raises(CustomError) as info:
        ctx.map(fail_at_7, range(20))
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "fail_at_7" in cause.text
    assert 'raise CustomError(f"bad element {index}")' in cause.text
    report = "".join(traceback.format_exception(info.value))
    assert "fail_at_7" in report
    assert "The above exception was the direct cause" in report


def test_thread_traceback_is_the_original_one() -> None:
    with ThreadContext(2) as ctx, pytest.raises(CustomError) as info:
        ctx.map(fail_at_7, range(20))
    assert any(entry.name == "fail_at_7" for entry in info.traceback)


@pytest.mark.parametrize("kind", [ThreadContext, ProcessContext])
def test_other_workers_stop_promptly(kind: type[BaseContext]) -> None:
    with kind(2) as ctx:
        ran = ctx.zeros(400, dtype=np.int64)
        failing: list[threading.Thread] = []

        def kernel(worker_id: int, index: int, value: int) -> None:
            ran[index] = 1
            if index == 0:  # fails once the other worker is inside share 1
                failing.append(threading.current_thread())
                wait_until(lambda: bool(ran[50]))
                raise CustomError("first")
            if index == 99:  # the other worker's last element of share 1 ends only after
                if failing:  # the failing thread has recorded its error and left;
                    failing[0].join(60)
                else:  # a process: its caller stops it here once the error arrives.
                    time.sleep(60)

        with pytest.raises(CustomError):
            ctx.map(kernel, range(400), shares=8)
    # Eight shares of 50: the failure stopped the other worker within share 1.
    assert np.flatnonzero(ran).tolist() == [0, *range(50, 100)]


def test_unpicklable_exception_does_not_hang() -> None:
    def kernel(worker_id: int, index: int, value: int) -> None:
        raise HoldsALambdaError()

    with ProcessContext(2) as ctx, pytest.raises(KernelError, match="HoldsALambdaError") as info:
        ctx.map(kernel, range(4))
    assert info.value.type_name.endswith("HoldsALambdaError")
    assert "holds a lambda" in str(info.value)
    assert isinstance(info.value.__cause__, RemoteTraceback)


def test_exception_that_cannot_be_unpickled_does_not_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing distributed (the dask tests) installs tblib's reducer for every exception
    # class that exists then, which rebuilds this one without calling __init__: take it
    # out, so that the class cannot be unpickled whatever ran before.
    import copyreg

    monkeypatch.delitem(copyreg.dispatch_table, NeedsKeywordError, raising=False)

    def kernel(worker_id: int, index: int, value: int) -> None:
        raise NeedsKeywordError(code=3)

    with ProcessContext(2) as ctx, pytest.raises(KernelError, match="NeedsKeywordError: code 3"):
        ctx.map(kernel, range(4))


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exception_in_a_worker_does_not_hang(
    context: BaseContext, exc_type: type[BaseException]
) -> None:
    def kernel(worker_id: int, index: int, value: int) -> None:
        raise exc_type(5)

    with pytest.raises(exc_type):
        context.map(kernel, range(10))


def test_unpicklable_return_value() -> None:
    with ProcessContext(2) as ctx, pytest.raises(Exception, match=r"lambda|pickle") as info:
        ctx.map(lambda wid, i, v: lambda: None, range(4))
    assert isinstance(info.value.__cause__, RemoteTraceback)


def test_exception_in_the_target() -> None:
    class BrokenTarget:
        def split(self, n: int) -> list[int]:
            return [0, 1]

        def iterate(self, share: int) -> list[tuple[int]]:
            if share == 1:
                raise OSError(f"cannot open file {share}")
            return [(0,)]

    with ProcessContext(2) as ctx, pytest.raises(OSError, match="cannot open file 1"):
        ctx.map(lambda wid, i: None, BrokenTarget())


def test_context_usable_after_an_error(context: BaseContext) -> None:
    with pytest.raises(CustomError):
        context.map(fail_at_7, range(20))
    assert context.map(lambda wid, i, v: os.getpid() > 0, range(5)) == [True] * 5
