"""Errors met while a map is prepared for warm workers keep their type."""

from __future__ import annotations

import numpy as np
import pytest

import pashmap as pm
from pashmap import ContextMismatchError
from pashmap_shm import ProcessContext

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("pool_helper_processes", "no_leaks"),
]


@pytest.mark.parametrize(
    "options",
    [{"persistent": True}, {"start_method": "forkserver"}, {"start_method": "spawn"}],
    ids=["fork-persistent", "forkserver", "spawn"],
)
def test_an_accumulator_of_another_context_raises_context_mismatch(
    options: dict[str, object],
) -> None:
    made_for = ProcessContext(2)
    total = pm.Accumulator((3,), np.float64, context=made_for)
    with ProcessContext(2, **options) as ctx:  # type: ignore[arg-type]
        with pytest.raises(ContextMismatchError, match="made for"):
            ctx.map(lambda w, i, v: total.local.__iadd__(1), range(4))
        # The context is still usable.
        assert ctx.map(lambda w, i, v: v, range(3)) == [0, 1, 2]
