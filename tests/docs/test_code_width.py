"""Code blocks fit the page: no line of a fenced block is cut behind a scrollbar.

With both sidebars shown (a 1280-pixel window), the site's content column holds 82
characters of code; a longer line hides its end (a comment, a command's last argument,
the end of an error message) behind a horizontal scrollbar. Every page keeps every line
of every block (Python, shell, text) within 80 characters; the home and getting-started
pages, which a newcomer reads first, are named in the issue that asked for this.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
WIDTH = 80
PAGES = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
_FENCE = re.compile(r"^(?P<indent> *)(`{3,}|~{3,})")


def long_lines(text: str) -> list[tuple[int, int]]:
    """(line number, length) of the lines inside fenced blocks longer than WIDTH."""
    found = []
    inside: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            inside = None if inside is not None else match["indent"]
            continue
        if inside is not None:
            code = line[len(inside) :] if line.startswith(inside) else line
            if len(code) > WIDTH:
                found.append((number, len(code)))
    return found


def test_first_pages_are_checked() -> None:
    assert {"index.md", "getting-started.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_code_lines_fit_the_page(page: str) -> None:
    assert not long_lines((DOCS / page).read_text()), (
        f"docs/{page}: code lines longer than {WIDTH} characters (line, length): "
        f"{long_lines((DOCS / page).read_text())}"
    )


def test_long_lines_are_found() -> None:
    text = "```python\n" + "x" * 81 + "\n```\n" + "y" * 100 + "\n"
    assert long_lines(text) == [(2, 81)]
