"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pashmap import default, registry
from tests.cgroups import make_child_cgroup


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


@pytest.fixture
def child_cgroup(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A new cgroup (v1) of the controller given as the parameter, removed after the test;
    the test is skipped when none can be made here (see tests/cgroups.py)::

        @pytest.mark.parametrize("child_cgroup", ["memory"], indirect=True)
    """
    yield from make_child_cgroup(str(request.param))
