"""Every ```python block of the READMEs (the repository's and each package's) runs.

A README is what a newcomer copies from first. Its blocks run in order as one script,
twice in the same directory (as the docs pages' examples do), unless a block says on
its first line that it is a sketch (``# Sketch: ...``): code that needs the facility's
data or names of the reader's own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.docs.test_examples import python_blocks, run_blocks_twice

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]
# What the blocks of each README import beyond pashmap-core (skipped when missing).
NEEDS = {
    "packages/pashmap-shm/README.md": ["pashmap_shm"],
    "packages/pashmap-xfel/README.md": ["pashmap_shm", "pashmap_xfel", "extra_data"],
}


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_readmes_are_found() -> None:
    assert len(READMES) == 4


@pytest.mark.parametrize("readme", READMES, ids=[_id(p) for p in READMES])
def test_readme_blocks_run_twice(readme: Path, tmp_path: Path) -> None:
    for module in NEEDS.get(_id(readme), []):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the examples of {_id(readme)} need {module}")
    blocks = python_blocks(readme.read_text())
    if not blocks:
        pytest.skip(f"{_id(readme)} has only sketches")
    run_blocks_twice(blocks, _id(readme), tmp_path)


@pytest.mark.parametrize("readme", READMES, ids=[_id(p) for p in READMES])
def test_readme_blocks_not_run_are_marked_as_sketches(readme: Path) -> None:
    hidden = [
        block.line
        for block in python_blocks(readme.read_text(), every=True)
        if block.skipped and not block.sketch
    ]
    assert not hidden, f"{_id(readme)}: blocks at lines {hidden} are skipped but not sketches"


def test_more_than_a_loop_runs() -> None:
    """The README's "More than a loop" block is run, not a sketch (issue 14)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## More than a loop") :]
    section = section[: section.index("\n## ", 1)]
    blocks = python_blocks(section, every=True)
    assert blocks
    assert not any(block.skipped for block in blocks)
