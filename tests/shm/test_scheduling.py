"""Guided and equal shares give the same map under the pashmap-shm contexts."""

from __future__ import annotations

import numpy as np
import pytest

import pashmap as pm
from pashmap_shm import ProcessContext, ThreadContext
from tests.core.test_shares import Plain


@pytest.mark.parametrize("kind", [ThreadContext, ProcessContext])
def test_guided_and_plain_targets_map_the_same(kind: type[pm.BaseContext]) -> None:
    with kind(2) as ctx:
        guided = ctx.map(lambda w, i, v: (i, v), list(range(0, 5000, 10)))
        plain = ctx.map(lambda w, i, v: (i, v), Plain(500))
    assert guided == plain == [(i, i * 10) for i in range(500)]


def test_more_shares_than_a_default_pipe_holds() -> None:
    # 20,000 share numbers are 80,000 bytes: the share queue's pipe must be widened.
    ctx = ProcessContext(2)
    out = ctx.zeros(40_000)

    def double(worker_id: int, index: int, value: float) -> None:
        out[index] = 2 * value

    values = np.arange(40_000.0)
    ctx.map(double, values, shares=20_000)
    np.testing.assert_array_equal(out, 2 * values)
