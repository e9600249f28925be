"""The conformance suite on every registered context without a test module of its own.

pashmap's own contexts run the suite in the modules named in ``COVERED``, in each of
their modes; a context registered by another installed package (in the
``pashmap.contexts`` entry-point group) runs it here, created by name with two workers.
A plugin that wires the suite into its own test module adds its name to ``COVERED``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pashmap import registry
from pashmap.testing import ContextConformance, ContextFactory

TESTS = Path(__file__).resolve().parents[1]

COVERED = {
    "local": "core/test_conformance_local.py",
    "threads": "shm/test_conformance.py",
    "processes": "shm/test_conformance.py",
}

OTHERS = [name for name in registry.context_names() if name not in COVERED]


def test_every_registered_context_runs_the_suite() -> None:
    for name, module in COVERED.items():
        assert (TESTS / module).is_file(), f"{name!r} runs the suite in tests/{module}"


# Defined only when there is something to run, so that the usual run reports no skips.
if OTHERS:

    class TestRegisteredContext(ContextConformance):
        @pytest.fixture(params=OTHERS)
        def make_context(self, request: pytest.FixtureRequest) -> ContextFactory:
            name = str(request.param)
            return lambda num_workers: registry.create_context(name, num_workers=num_workers)
