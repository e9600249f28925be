"""A kernel that cannot take the target's arguments is refused before the map runs."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import pashmap as pm


def double(x: int) -> int:
    return 2 * x


def test_a_pool_map_style_kernel_gets_a_message_that_teaches() -> None:
    with pytest.raises(TypeError) as info:
        pm.map(double, [1, 2, 3])  # type: ignore[arg-type]
    message = str(info.value)
    assert "double(x)" in message
    assert "kernel(worker_id, index, value)" in message
    assert "def double(worker_id, index, value)" in message


def test_no_element_runs_when_the_kernel_does_not_fit(context_name: str) -> None:
    calls = []

    def two(worker_id: int, index: int) -> None:
        calls.append(index)

    with pm.use_context(context_name), pytest.raises(TypeError, match="cannot be called as"):
        pm.map(two, np.arange(4.0))  # type: ignore[call-overload]
    assert calls == []


class Holder:
    def method(self, worker_id: int, index: int, value: Any) -> Any:
        return value


@pytest.mark.parametrize(
    "kernel",
    [
        Holder().method,
        functools.partial(lambda extra, worker_id, index, value: value, 0),
        lambda *args: args[2],
        lambda worker_id, *rest: rest[1],
        lambda worker_id, index, value, scale=1: value * scale,
    ],
    ids=["bound method", "partial", "varargs", "some varargs", "default"],
)
def test_kernels_that_fit_in_any_form_run(kernel: Any) -> None:
    assert pm.map(kernel, [5, 6]) == [5, 6]


def test_callables_that_cannot_be_inspected_are_left_alone() -> None:
    class CallableObject:
        def __call__(self, *args: Any) -> Any:
            return args[2]

    assert pm.map(CallableObject(), [7]) == [7]


def test_a_target_without_kernel_arguments_is_not_checked() -> None:
    class Pairs:
        def split(self, n: int) -> list[range]:
            return [range(2)]

        def iterate(self, share: range) -> Any:
            return ((i,) for i in share)

    assert pm.map(lambda worker_id, index: index, Pairs()) == [0, 1]


def write_into(worker_id: int, index: int, value: float, out: Any) -> None:
    out[index] = value


def test_arguments_bound_by_keyword_are_understood() -> None:
    out = np.zeros(3)
    pm.map(functools.partial(write_into, out=out), [1.0, 2.0, 3.0])
    assert out.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(TypeError, match="cannot be called as"):
        pm.map(functools.partial(write_into, value=1.0, out=out), [1.0])


def test_generator_and_async_kernels_are_refused_before_the_map(context_name: str) -> None:
    def generates(worker_id: int, index: int, value: int) -> Any:
        yield value

    async def waits(worker_id: int, index: int, value: int) -> int:
        return value

    with pm.use_context(context_name):
        with pytest.raises(TypeError, match="generator function"):
            pm.map(generates, [1, 2])
        with pytest.raises(TypeError, match="async function"):
            pm.map(waits, [1, 2])
