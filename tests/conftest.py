"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pashmap import default


@pytest.fixture(autouse=True)
def _restore_default_context() -> Iterator[None]:
    """Every test starts and ends with the initial default context."""
    before = default._default
    yield
    default._default = before
