"""Guided and equal shares give the same map under the pashmap-shm contexts."""

from __future__ import annotations

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
