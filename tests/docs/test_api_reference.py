"""Every public name of the kits has a place in the API reference (docs/api/core.md).

The reference lists each kit module's members explicitly; a name added to a kit's
``__all__`` and not to that list is missing from the site, and a page that links to it
fails the strict docs build (which CI runs last, after the whole suite).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api" / "core.md"
KITS = ["pashmap.contexts", "pashmap.targets", "pashmap.registry", "pashmap.testing"]


def documented(module: str) -> set[str]:
    """Members listed under ``::: module``, plus names the reference renders elsewhere.

    A name a kit re-exports from another kit (``context_names`` in ``pashmap.registry``)
    counts as documented where that other kit lists it, or as ``::: pashmap.Name``.
    """
    text = REFERENCE.read_text()
    top = set(re.findall(r"^::: pashmap\.(\w+)\s*$", text, re.MULTILINE))
    block = re.search(
        rf"^::: {re.escape(module)}\n(?P<body>(?:[ \t]+.*\n|\n)*)", text, re.MULTILINE
    )
    assert block, f"{REFERENCE.name} has no '::: {module}' block"
    own = set(re.findall(r"^\s+- (\w+)\s*$", block["body"], re.MULTILINE))
    anywhere = set(re.findall(r"^\s+- (\w+)\s*$", text, re.MULTILINE))
    home = importlib.import_module(module)
    elsewhere = {
        name
        for name in anywhere
        if any(
            getattr(importlib.import_module(kit), name, None) is getattr(home, name, 0)
            for kit in KITS
            if kit != module
        )
    }
    return own | top | elsewhere


@pytest.mark.parametrize("module", KITS)
def test_every_public_name_is_in_the_reference(module: str) -> None:
    names = set(importlib.import_module(module).__all__)
    missing = sorted(names - documented(module))
    assert not missing, f"add to the members of '::: {module}' in docs/api/core.md: {missing}"
