"""The example context of docs/writing-a-context.md imports only the public kit and
passes the conformance suite.

The class is taken from the page itself, so the page cannot drift from what is tested.
"""

from __future__ import annotations

import ast
import sys
import types
from collections.abc import Iterator

import pytest

from pashmap.testing import ContextConformance, ContextFactory

from .test_examples import DOCS, python_blocks

PAGE = DOCS / "writing-a-context.md"
MODULE = "writing_a_context_example"


def example_source() -> str:
    """The one block of the page that defines ShuffledContext."""
    blocks = [b.code for b in python_blocks(PAGE.read_text()) if "class ShuffledContext" in b.code]
    assert len(blocks) == 1, "docs/writing-a-context.md defines ShuffledContext in one block"
    return blocks[0]


def test_the_example_imports_only_the_public_kit() -> None:
    imported = []
    for node in ast.walk(ast.parse(example_source())):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    ours = [name for name in imported if name.split(".")[0].startswith("pashmap")]
    assert ours == ["pashmap.contexts"]


@pytest.fixture(scope="module")
def example() -> Iterator[types.ModuleType]:
    """The block run as a module of its own (importable by name, as a plugin would be)."""
    module = types.ModuleType(MODULE)
    sys.modules[MODULE] = module
    try:
        exec(compile(example_source(), str(PAGE), "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[MODULE]


class TestShuffledContext(ContextConformance):
    @pytest.fixture(params=[0, 1], ids=["seed0", "seed1"])
    def make_context(
        self, example: types.ModuleType, request: pytest.FixtureRequest
    ) -> ContextFactory:
        shuffled: type = example.ShuffledContext
        return lambda num_workers: shuffled(seed=request.param)
