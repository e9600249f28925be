"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pashmap import default, registry


@pytest.fixture(autouse=True)
def _restore_default_context() -> Iterator[None]:
    """Every test starts and ends with the initial default context."""
    before = default._default
    yield
    default._default = before


@pytest.fixture(params=registry.context_names())
def context_name(request: pytest.FixtureRequest) -> str:
    """Each installed context kind by name: 'local', and 'threads'/'processes' with pashmap-shm."""
    return str(request.param)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Forget cached entry-point discoveries before and after the test."""
    registry.registrations.cache_clear()
    registry.target_factories.cache_clear()
    yield
    registry.registrations.cache_clear()
    registry.target_factories.cache_clear()
