"""Every ```python block of the documentation runs, page by page.

For each page under ``docs/``, its Python blocks are written to files in a temporary
directory and executed in order, in one fresh interpreter per page (so the blocks of a
page share their variables, as a reader running them one after another would), with that
directory as the working directory and warnings turned into errors. Each page runs
twice, in the same directory: a reader who runs an example again (or re-runs a notebook
cell) must not trip over what the first run left behind, such as a directory it made.

A page declares what it needs beyond pashmap-core in an HTML comment, which skips the
page when a module is missing::

    <!-- docs-test: requires pashmap_shm extra_data -->

A block is left out when its first line is a comment starting with ``# Sketch`` (for
code that needs the facility, e.g. ``open_run(proposal=...)``, or names of the reader's
own): the reader sees that it does not run as written. The older markers, the line
``<!-- no-test -->`` before the fence or a fence saying ``python skip``, are invisible on
the page, so a block they leave out must carry the ``# Sketch`` line too
(``test_blocks_not_run_are_marked_as_sketches``). Use sketches sparingly: an example that
is not run is an example that rots.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
_REQUIRES = re.compile(r"<!--\s*docs-test:\s*requires\s+(?P<modules>[\w. ]+?)\s*-->")
_NO_TEST = "<!-- no-test -->"
_SKETCH = re.compile(r"^#\s*sketch\b", re.IGNORECASE)

# Runs the blocks of one page in the namespace of __main__, so that functions and classes
# they define are importable (and picklable) by their module name, as in a script.
# The guard keeps workers started with 'spawn' or 'forkserver', which import the main
# module afresh, from running the examples again.
_DRIVER = """\
import json as _json, sys as _sys, traceback as _traceback
import __main__
if __name__ == "__main__":
    with open(_sys.argv[1]) as _stream:
        _blocks = _json.load(_stream)
    for _block in _blocks:
        with open(_block["path"]) as _stream:
            _source = _stream.read()
        try:
            exec(compile(_source, _block["path"], "exec"), __main__.__dict__)
        except BaseException:
            _sys.stderr.write(f"\\n*** {_block['where']} failed:\\n")
            _traceback.print_exc()
            _sys.exit(1)
"""


@dataclass
class Block:
    """One Python block of a page: its code and the line its fence opens on."""

    line: int
    code: str
    skipped: bool = False

    @property
    def sketch(self) -> bool:
        """Whether the block says, visibly, that it is a sketch (its first line)."""
        first = self.code.lstrip("\n").split("\n", 1)[0]
        return _SKETCH.match(first.strip()) is not None


def python_blocks(text: str, *, every: bool = False) -> list[Block]:
    """The ```python blocks of a Markdown page that are to be run, in order.

    With ``every``, the blocks that are left out too, flagged ``skipped``.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        words = match["info"].strip().strip("{}").split()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and set(lines[i].strip()) == {fence[0]}
        ):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        language = words[0].lstrip(".").lower() if words else ""
        skipped = "skip" in words[1:] or (start > 0 and lines[start - 1].strip() == _NO_TEST)
        if language in ("python", "py"):
            block = Block(start + 1, "\n".join(body) + "\n", skipped)
            block.skipped = skipped or block.sketch
            if every or not block.skipped:
                blocks.append(block)
    return blocks


def required_modules(text: str) -> list[str]:
    """The modules a page declares it needs (``<!-- docs-test: requires ... -->``)."""
    return [name for match in _REQUIRES.finditer(text) for name in match["modules"].split()]


# The pages with examples (API pages have none).
ALL_PAGES = sorted(DOCS.rglob("*.md"))
PAGES = [page for page in ALL_PAGES if python_blocks(page.read_text())]


def test_pages_are_found() -> None:
    assert DOCS.is_dir()
    assert len(PAGES) >= 5


def run_blocks_twice(blocks: list[Block], name: str, tmp_path: Path) -> None:
    """Run ``blocks`` in order as one script, twice, in one working directory.

    ``name`` says where they come from (``docs/xfel.md``, ``README.md``) in failures.
    """
    records = []
    for number, block in enumerate(blocks, 1):
        path = tmp_path / f"{Path(name).stem}_block{number:02}.py"
        path.write_text(block.code)
        where = f"{name}, block {number} (line {block.line})"
        records.append({"path": str(path), "where": where})
    (tmp_path / "blocks.json").write_text(json.dumps(records))
    driver = tmp_path / "run_blocks.py"
    driver.write_text(_DRIVER)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
    for run in ("first", "second"):
        done = subprocess.run(
            [sys.executable, "-W", "error", str(driver), str(tmp_path / "blocks.json")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=110,
        )
        assert done.returncode == 0, (
            f"examples of {name} failed on the {run} run (in the same directory as the "
            f"first)\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run_twice(page: Path, tmp_path: Path) -> None:
    text = page.read_text()
    for module in required_modules(text):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the examples of this page need {module}")
    run_blocks_twice(python_blocks(text), f"docs/{page.relative_to(DOCS)}", tmp_path)


@pytest.mark.parametrize("page", ALL_PAGES, ids=[str(p.relative_to(DOCS)) for p in ALL_PAGES])
def test_blocks_not_run_are_marked_as_sketches(page: Path) -> None:
    """A block the tests leave out says so on the page: its first line is ``# Sketch``."""
    hidden = [
        block.line
        for block in python_blocks(page.read_text(), every=True)
        if block.skipped and not block.sketch
    ]
    assert not hidden, (
        f"docs/{page.relative_to(DOCS)}: the python blocks at lines {hidden} are not run "
        "(<!-- no-test --> or 'python skip') but do not say so: start them with a "
        "'# Sketch: ...' comment"
    )


def test_block_parsing() -> None:
    text = "\n".join(
        [
            "<!-- docs-test: requires pashmap_shm extra_data -->",
            "```python",
            "a = 1",
            "```",
            "<!-- no-test -->",
            "```python",
            "open_run(proposal=1)",
            "```",
            "```python skip",
            "raise SystemExit",
            "```",
            "```python",
            "# Sketch: needs your own detector",
            "frames = open_detector()",
            "```",
            "```bash",
            "echo no",
            "```",
            "!!! note",
            "    ```python",
            "    b = a + 1",
            "    ```",
        ]
    )
    assert [b.code for b in python_blocks(text)] == ["a = 1\n", "b = a + 1\n"]
    assert required_modules(text) == ["pashmap_shm", "extra_data"]


def test_sketch_marker() -> None:
    text = "\n".join(
        [
            "<!-- no-test -->",
            "```python",
            "# Sketch: at the facility",
            "run = open_run(proposal=1)",
            "```",
            "```python skip",
            "raise SystemExit",
            "```",
        ]
    )
    assert python_blocks(text) == []
    blocks = python_blocks(text, every=True)
    assert [(b.skipped, b.sketch) for b in blocks] == [(True, True), (True, False)]
