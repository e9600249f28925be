"""The README's quick guide, as it is written there, under every registered context.

One test, parametrised: each context registered in ``pashmap.contexts`` (by name, with
1, 2 and 4 workers where it has more than one), made the default in three ways: a
``pm.use_context`` block, ``pm.set_default_context``, and the context's own ``array`` and
``map`` in place of ``pm.array`` and ``pm.map``.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import pashmap as pm
from pashmap import registry
from pashmap.contexts import Context

README = Path(__file__).resolve().parents[2] / "README.md"
SINGLE_WORKER = {"local", "serial"}


def quick_guide() -> str:
    """The first ```python block under the README's "Quick guide" heading."""
    text = README.read_text()
    section = text[text.index("## Quick guide") :]
    match = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match is not None, "the README's quick guide has no ```python block"
    return match.group(1)


def run_quick_guide(pm_module: Any) -> dict[str, Any]:
    """Run the quick guide with ``pm_module`` as its ``pm``; return its variables."""
    code = quick_guide()
    assert "import pashmap as pm" in code
    namespace: dict[str, Any] = {"__name__": "quick_guide", "pm": pm_module}
    exec(compile(code.replace("import pashmap as pm", ""), str(README), "exec"), namespace)
    return namespace


CASES = [
    pytest.param(name, workers, how, id=f"{name}-{how}" + (f"-{workers}w" if workers else ""))
    for name in registry.context_names()
    for workers in ([None] if name in SINGLE_WORKER else [1, 2, 4])
    for how in ("use_context", "set_default_context", "context_methods")
]


@pytest.mark.parametrize(("name", "workers", "how"), CASES)
def test_quick_guide(name: str, workers: int | None, how: str) -> None:
    kwargs = {} if workers is None else {"num_workers": workers}
    if how == "use_context":
        before = pm.get_default_context()
        with pm.use_context(name, **kwargs) as context:
            done = run_quick_guide(pm)
        assert pm.get_default_context() is before  # the block restored the default
    elif how == "set_default_context":
        context = pm.set_default_context(name, **kwargs)
        done = run_quick_guide(pm)
        assert pm.get_default_context() is context
    else:
        context = registry.create_context(name, **kwargs)
        # Inside its own with block where it has one (warm workers for 'processes').
        with context if hasattr(context, "__enter__") else contextlib.closing(context):
            done = run_quick_guide(SimpleNamespace(array=context.array, map=context.map))
    assert isinstance(context, Context)
    if workers is not None:
        assert context.num_workers == workers
    # The block checks itself (assert_allclose); the result is also exact.
    np.testing.assert_array_equal(done["outp"], done["inp"] * 3)
