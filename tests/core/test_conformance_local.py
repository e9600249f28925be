"""The conformance suite (pashmap.testing) on the local context, the reference."""

from __future__ import annotations

import pytest

from pashmap.contexts import LocalContext
from pashmap.testing import ContextConformance, ContextFactory


class TestLocalContext(ContextConformance):
    @pytest.fixture
    def make_context(self) -> ContextFactory:
        # The local context has one worker whatever is asked: the suite reads num_workers.
        return lambda num_workers: LocalContext()
