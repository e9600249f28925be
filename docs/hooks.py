"""MkDocs hooks: the benchmark results on "Choosing a context", made at build time.

The table and the PNG figures come from ``benchmarks/results.json`` (see
``docs/figures.py``) on every build. The figures are added to the site as generated
files, so nothing generated ever lands in ``docs/`` or in git. Without a results file
the page says that results are pending.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

PLACEHOLDER = "<!-- benchmark-results -->"

# figures.py sits next to this file; it is loaded by path, as docs/ is not a package.
_spec = importlib.util.spec_from_file_location(
    "pashmap_docs_figures", Path(__file__).with_name("figures.py")
)
assert _spec is not None
assert _spec.loader is not None
figures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = figures
_spec.loader.exec_module(figures)

_rendered: Any = None


def on_files(files: Files, config: Any) -> Files:
    global _rendered
    _rendered = figures.render()
    for name, png in _rendered.images.items():
        files.append(File.generated(config, f"figures/{name}", content=png))
    return files


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    if PLACEHOLDER in markdown and _rendered is not None:
        return markdown.replace(PLACEHOLDER, _rendered.markdown)
    return markdown


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    if figures.RESULTS.parent.is_dir():
        server.watch(str(figures.RESULTS.parent))
    return server
