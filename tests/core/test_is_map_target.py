"""is_map_target gives the same answers as isinstance(obj, MapTarget), cheaper."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pashmap import MapTarget
from pashmap.registry import is_map_target
from pashmap.targets.sequence import SequenceTarget


class Both:
    def split(self, n: int) -> list[Any]:
        return []

    def iterate(self, share: Any) -> list[Any]:
        return []


class Blocked(Both):
    iterate = None  # type: ignore[assignment]


class OnlySplit:
    def split(self, n: int) -> list[Any]:
        return []


@pytest.mark.parametrize(
    "obj",
    [Both(), Blocked(), OnlySplit(), "text", [1, 2], np.arange(3), SequenceTarget([1]), None, 3],
)
def test_same_answer_as_the_protocol(obj: object) -> None:
    assert is_map_target(obj) == isinstance(obj, MapTarget)
