"""Docstrings are written for the site's renderer: Google style with Markdown.

mkdocstrings reads them with ``docstring_style: google`` and renders Markdown, where a
reST literal block (``Example::`` and an indented block) shows a literal "Example::"
(issue 14). Examples go under an ``Examples:`` section, or after a plain colon, as fenced
code blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(ROOT.glob("packages/*/src/**/*.py"))


def docstrings(path: Path) -> list[tuple[int, str]]:
    """(line, docstring) of the module and every class and function in ``path``."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=True)
            if text:
                found.append((getattr(node, "lineno", 1), text))
    return found


@pytest.mark.parametrize(
    "path", SOURCES, ids=[str(p.relative_to(ROOT / "packages")) for p in SOURCES]
)
def test_no_rest_literal_blocks(path: Path) -> None:
    bad = [
        f"line {line}: {text_line.strip()!r}"
        for line, text in docstrings(path)
        for text_line in text.splitlines()
        if text_line.rstrip().endswith("::") and text_line.strip() != "::"
    ]
    assert not bad, f"reST literal blocks show as '::' on the site: {bad}"


def test_sources_are_found() -> None:
    assert len(SOURCES) > 20
